/**
 * What a write to a switch file may say: "0" or "1", with one optional trailing newline, at
 * offset 0 (as the kernel's sysctl handlers take it); everything else is refused with no change.
 */
import { describe, expect, it } from 'vitest';
import { parseSwitchWrite } from '../../src/switches/controlInput';

const write = (text: string, offset = 0): boolean | null => parseSwitchWrite(Buffer.from(text, 'latin1'), offset);

describe('parseSwitchWrite', () => {
  it.each([
    ['0', false],
    ['1', true],
    ['0\n', false],
    ['1\n', true],
  ])('accepts %j as %s', (text, value) => {
    expect(write(text)).toBe(value);
  });

  it.each([
    ['empty', ''],
    ['a lone newline', '\n'],
    ['surrounding spaces', ' 1 '],
    ['a leading space', ' 1'],
    ['a trailing space', '1 '],
    ['a CRLF ending', '1\r\n'],
    ['two newlines', '1\n\n'],
    ['a leading zero', '01'],
    ['2', '2'],
    ['-1', '-1'],
    ['a sign', '+1'],
    ['a word', 'on'],
    ['true', 'true'],
    ['a NUL after the digit', '1\0'],
    ['a NUL alone', '\0'],
    ['a tab', '\t'],
    ['a Latin-1 digit lookalike', '\u00b9'],
  ])('refuses %s', (_name, text) => {
    expect(write(text)).toBeNull();
  });

  it('refuses a huge write before looking at it (1 MiB starting with "1\\n")', () => {
    const huge = Buffer.alloc(1024 * 1024, 0x31);
    huge[1] = 0x0a;
    expect(parseSwitchWrite(huge, 0)).toBeNull();
  });

  it.each([1, 2, 4096, Number.MAX_SAFE_INTEGER])('refuses a write at offset %d, even of a valid value', (offset) => {
    expect(write('1', offset)).toBeNull();
    expect(write('0\n', offset)).toBeNull();
  });

  it('reads only the bytes of the view it is given (a slice of a larger buffer)', () => {
    const backing = Buffer.from('xx1\nyy', 'latin1');
    expect(parseSwitchWrite(backing.subarray(2, 4), 0)).toBe(true);
    expect(parseSwitchWrite(backing.subarray(2, 5), 0)).toBeNull();
  });
});
