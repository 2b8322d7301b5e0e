// The watchdog's probe (startWatchdog.ts): a read of a file through our mount, from a child
// process that lives as long as the daemon.
import { type ChildProcess, spawn } from 'node:child_process';

/** The prober's loop: for each line on stdin, the file's first line (the shell's own `read`, no
 *  fork), or ERR when it cannot be read. */
const PROBER_SCRIPT = 'while IFS= read -r _; do if IFS= read -r line < "$1"; then printf \'%s\\n\' "$line"; else echo ERR; fi; done';
/** A probe's answer is one short line ("0", "1", "ERR"); anything longer is not the file. */
const PROBER_MAX_CHARS = 64;

/**
 * Reads `file` in a child process. Never from a thread of our own: a thread waiting on our own
 * mount cannot be killed, so a daemon dying mid-probe would never exit and never close
 * /dev/fuse, leaving every reader stuck until someone aborts the connection by hand. One child
 * (sh) for the daemon's life, asked once per probe: a fork + exec of cat(1) every 2 s copied the
 * page tables of a 100+ MB process each time (the idle daemon's largest cost after the load
 * sampler). It ends with us (EOF on its stdin); if it ends first, the next probe starts another.
 */
export class ChildProber {
  private child: ChildProcess | null = null;
  private waiting: { resolve: (text: string) => void; reject: (err: Error) => void } | null = null;
  private received = '';

  constructor(private readonly file: string) {}

  /** The file's first line and its newline; one read at a time (the watchdog never overlaps them). */
  read(): Promise<string> {
    if (this.waiting !== null) return Promise.reject(new Error('a probe is still outstanding'));
    const child = this.child ?? this.spawn();
    return new Promise((resolve, reject) => {
      this.waiting = { resolve, reject };
      child.stdin?.write('\n');
    });
  }

  /** Ends the child (EOF on its stdin); a later read starts another. */
  close(): void {
    this.child?.stdin?.end();
    this.child = null;
    this.settle(new Error('the prober was closed'));
  }

  private spawn(): ChildProcess {
    const child = spawn('sh', ['-c', PROBER_SCRIPT, 'isolfs-probe', this.file], { stdio: ['pipe', 'pipe', 'ignore'] });
    this.child = child;
    this.received = '';
    child.stdin?.on('error', () => undefined); // EPIPE once it ended: 'exit' says so
    child.stdout?.setEncoding('utf8');
    child.stdout?.on('data', (chunk: string) => this.onData(child, chunk));
    const ended = (why: string): void => {
      if (this.child === child) this.child = null;
      this.settle(new Error(why));
    };
    child.on('error', (err) => ended(`probe process: ${err.message}`));
    child.on('exit', (code, signal) => ended(`probe process ended (${signal ?? code})`));
    return child;
  }

  private onData(child: ChildProcess, chunk: string): void {
    this.received += chunk;
    const newline = this.received.indexOf('\n');
    if (newline < 0) {
      if (this.received.length > PROBER_MAX_CHARS) child.kill('SIGKILL');
      return;
    }
    const line = this.received.slice(0, newline + 1);
    this.received = this.received.slice(newline + 1);
    this.settle(line === 'ERR\n' ? new Error(`cannot read ${this.file}`) : line);
  }

  private settle(result: string | Error): void {
    const waiting = this.waiting;
    this.waiting = null;
    if (waiting === null) return;
    if (typeof result === 'string') waiting.resolve(result);
    else waiting.reject(result);
  }
}
