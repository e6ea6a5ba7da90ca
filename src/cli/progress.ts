// A progress bar on stderr for long CLI work (fsck --verify-digests, --rebuild-index): redrawn at most ten
// times a second on a terminal; on a pipe or file, one line per tenth of the work, so logs stay short.

const WIDTH = 30;
const REDRAW_MS = 100;

export interface Progress {
  /** Adds `units` of work done (bytes, items). */
  advance(units: number): void;
  /** Final line; the bar is left at its last state. */
  done(): void;
}

export function progressBar(label: string, total: number, format: (units: number) => string, stream: NodeJS.WriteStream = process.stderr): Progress {
  const started = Date.now();
  let current = 0;
  let drawnAt = 0;
  let lastTenth = -1;
  const line = (): string => {
    const fraction = total > 0 ? Math.min(1, current / total) : 1;
    const filled = Math.round(fraction * WIDTH);
    const seconds = ((Date.now() - started) / 1000).toFixed(0);
    return `${label} [${'='.repeat(filled)}${' '.repeat(WIDTH - filled)}] ${(fraction * 100).toFixed(0).padStart(3)}% ${format(current)}/${format(total)} ${seconds}s`;
  };
  const draw = (force: boolean): void => {
    if (stream.isTTY) {
      const now = Date.now();
      if (!force && now - drawnAt < REDRAW_MS) return;
      drawnAt = now;
      stream.write(`\r${line()}`);
      return;
    }
    const tenth = total > 0 ? Math.floor((current / total) * 10) : 10;
    if (force || tenth > lastTenth) {
      lastTenth = tenth;
      stream.write(`${line()}\n`);
    }
  };
  return {
    advance(units) {
      current += units;
      draw(false);
    },
    done() {
      draw(true);
      if (stream.isTTY) stream.write('\n');
    },
  };
}

export function humanBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}
