// The state of one download as its readers follow it: bytes on disk, verified, done or failed. Only the download
// that owns it moves it on (fill.ts); readers see the read-only FillView and wait on `changed`.
import type { Hash } from 'node:crypto';
import type { Digest } from '../registry/reference.js';

/** What reached the temp file before the disk filled up, and the hash over it (undefined when none is left). */
export interface OnDisk {
  length: number;
  hash: Hash | undefined;
}

/** A download as its readers see it. Methods, not fields, because the state changes across their awaits. */
export interface FillView {
  readonly digest: Digest;
  /** The temp file being written; undefined when the disk was full before one could be made. */
  readonly spoolPath: string | undefined;
  /** Size announced by upstream, or the verified size once known. */
  size(): number | undefined;
  /** Bytes on disk, readable by others. */
  written(): number;
  /** Size and digest checked: every byte may go out, even before the file is durable and in place. */
  isVerified(): boolean;
  /** Renamed into place and indexed: read the stored file. */
  isDone(): boolean;
  error(): Error | undefined;
  /** Set when the disk filled up: readers go on from upstream (see passthrough.ts). */
  diskFull(): OnDisk | undefined;
  /** Resolves at the next change of any of the above. */
  changed(): Promise<void>;
  /** Resolves once the download has succeeded or failed (and its temp file is gone unless it succeeded). */
  readonly settled: Promise<void>;
}

type State = 'running' | 'done' | 'failed';

export class FillProgress implements FillView {
  private state: State = 'running';
  private verified = false;
  private bytes = 0;
  private failure: Error | undefined;
  private full: OnDisk | undefined;
  private wake!: () => void;
  private next!: Promise<void>;
  private settle!: () => void;
  readonly settled = new Promise<void>((resolve) => (this.settle = resolve));

  constructor(
    readonly digest: Digest,
    private expectedSize: number | undefined,
    readonly spoolPath: string | undefined,
  ) {
    this.rearm();
  }

  size(): number | undefined {
    return this.expectedSize;
  }

  written(): number {
    return this.bytes;
  }

  isVerified(): boolean {
    return this.verified;
  }

  isDone(): boolean {
    return this.state === 'done';
  }

  error(): Error | undefined {
    return this.failure;
  }

  diskFull(): OnDisk | undefined {
    return this.full;
  }

  changed(): Promise<void> {
    return this.next;
  }

  /** `written` bytes are on disk. */
  progress(written: number): void {
    this.bytes = written;
    this.notify();
  }

  /** Size and digest checked (before the fsync and rename). */
  verify(size: number): void {
    this.expectedSize = size;
    this.bytes = size;
    this.verified = true;
    this.notify();
  }

  /** In place and indexed. */
  succeed(size: number): void {
    this.expectedSize = size;
    this.bytes = size;
    this.state = 'done';
    this.settle();
    this.notify();
  }

  fail(error: Error): void {
    this.failure = error;
    this.state = 'failed';
    this.settle();
    this.notify();
  }

  /** The content could not be written (full disk): readers are served from upstream instead. */
  failDiskFull(error: Error, onDisk: OnDisk): void {
    this.full = onDisk;
    this.fail(error);
  }

  private notify(): void {
    const wake = this.wake;
    this.rearm();
    wake();
  }

  private rearm(): void {
    this.next = new Promise((resolve) => (this.wake = resolve));
  }
}
