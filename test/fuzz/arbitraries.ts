/**
 * Generators for the fuzz lane: arbitrary text, and text shaped like the kernel's files but
 * hostile in its values (huge, 2^64, negative, NaN-ish, very long, missing, duplicated).
 */
import fc from 'fast-check';
import { expect } from 'vitest';

/** Numbers a parser must survive: edges of u64/s64, signs, floats, words, very long digits. */
export const hostileNumber: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(
    '0', '1', '-1', '-0', '4096', '4294967294', '4294967296', '9007199254740993',
    '9223372036854771712', '9223372036854775807', '9223372036854775808', '18446744073709551615',
    '18446744073709551616', '99999999999999999999999', 'NaN', 'Infinity', '-Infinity', '1e9',
    '0x10', '1.5', ' 1', '1 ', '+1', '', 'max', '-max', '\u0661', '00000000000000000000001',
  ),
  fc.bigInt({ min: -(1n << 70n), max: 1n << 70n }).map(String),
  fc.nat().map(String),
  fc.integer({ min: -5000, max: -1 }).map(String),
  fc.integer({ min: 1, max: 5000 }).map((n) => '9'.repeat(n)),
);

/** Lines of "key value" from a small key set (so keys repeat) with hostile values. */
export function keyedLines(keys: readonly string[], separator: fc.Arbitrary<string> = fc.constant(' ')): fc.Arbitrary<string> {
  const line = fc.tuple(fc.constantFrom(...keys), separator, hostileNumber).map(([k, s, v]) => `${k}${s}${v}`);
  return fc.array(line, { maxLength: 40 }).map((lines) => `${lines.join('\n')}\n`);
}

/** Any text: unicode strings, control characters, long runs, and huge single lines. */
export const anyText: fc.Arbitrary<string> = fc.oneof(
  fc.string({ maxLength: 200 }),
  fc.string({ unit: 'binary', maxLength: 200 }),
  fc.uint8Array({ maxLength: 300 }).map((bytes) => Buffer.from(bytes).toString('latin1')),
  fc.tuple(fc.constantFrom('a', '1', ' ', '\n', ':', '-', ','), fc.integer({ min: 1, max: 100_000 })).map(([c, n]) => c.repeat(n)),
);

/** Per fast-check run: never slower than this (work must not follow a value). */
export const RUN_BUDGET_MS = 1000;

/**
 * Runs `parse` and checks it either returns or throws an instance of `errorType` (the
 * documented parse error), within RUN_BUDGET_MS. Returns the result or null after an error.
 */
export function parsesOrRejects<T>(parse: () => T, errorType: new (...args: never[]) => Error, budgetMs = RUN_BUDGET_MS): T | null {
  const started = performance.now();
  let result: T | null = null;
  try {
    result = parse();
  } catch (err) {
    if (!(err instanceof errorType)) throw err;
    expect((err as Error).message.length).toBeLessThan(2000); // a huge input never makes a huge log line
  }
  expect(performance.now() - started).toBeLessThan(budgetMs);
  return result;
}

/** An Error that is exactly Error (not a TypeError/RangeError from a bug). */
export class PlainError extends Error {
  static [Symbol.hasInstance](value: unknown): boolean {
    return value instanceof Error && value.constructor === Error;
  }
}
