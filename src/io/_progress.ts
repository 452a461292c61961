/**
 * Download progress on stderr: a redrawn bar when stderr is a terminal, plain log lines otherwise.
 *
 * @module
 */

/** How progress is shown. */
export type ProgressMode = "auto" | "bar" | "lines" | "none";

/** A progress reporter for one file. */
export interface Progress {
  /** Sets the number of bytes done so far. */
  update(done: number): void;
  /** Ends the report (`ok` false for a failed or interrupted transfer). */
  end(ok: boolean, note?: string): void;
}

const encoder = new TextEncoder();

/** Writes to stderr, ignoring a closed stream. */
function write(text: string): void {
  try {
    Deno.stderr.writeSync(encoder.encode(text));
  } catch {
    // stderr closed: progress is best effort.
  }
}

/** Human-readable byte count. */
export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(1)} ${units[i]}`;
}

/** Starts reporting the transfer of `label` (`total` bytes when known, `start` already present). */
export function startProgress(
  label: string,
  options: { total?: number; start: number; mode: ProgressMode },
): Progress {
  let mode = options.mode;
  if (mode === "auto") {
    let tty = false;
    try {
      tty = Deno.stderr.isTerminal();
    } catch {
      tty = false;
    }
    mode = tty ? "bar" : "lines";
  }
  const began = performance.now();
  const total = options.total;
  if (mode === "none") return { update() {}, end() {} };
  if (mode === "lines") {
    const size = total === undefined ? "" : ` (${formatBytes(total)})`;
    const resume = options.start > 0 ? `, resuming at ${formatBytes(options.start)}` : "";
    write(`Downloading ${label}${size}${resume}\n`);
    let done = options.start;
    return {
      update(n) {
        done = n;
      },
      end(ok, note) {
        const secs = ((performance.now() - began) / 1000).toFixed(1);
        write(
          ok
            ? `Downloaded ${label}: ${formatBytes(done)} in ${secs} s\n`
            : `Stopped ${label} at ${formatBytes(done)}${note ? `: ${note}` : ""}\n`,
        );
      },
    };
  }
  let last = 0;
  let done = options.start;
  const draw = (final: boolean) => {
    const now = performance.now();
    if (!final && now - last < 100) return;
    last = now;
    const secs = Math.max((now - began) / 1000, 1e-3);
    const rate = `${formatBytes((done - options.start) / secs)}/s`;
    const width = 30;
    if (total !== undefined && total > 0) {
      const frac = Math.min(done / total, 1);
      const fill = Math.round(frac * width);
      write(
        `\r${label} [${"#".repeat(fill)}${".".repeat(width - fill)}] ${
          (frac * 100).toFixed(0).padStart(3)
        }% ${formatBytes(done)}/${formatBytes(total)} ${rate}\x1b[K`,
      );
    } else {
      write(`\r${label} ${formatBytes(done)} ${rate}\x1b[K`);
    }
  };
  draw(true);
  return {
    update(n) {
      done = n;
      draw(false);
    },
    end(ok, note) {
      draw(true);
      write(ok ? "\n" : ` stopped${note ? `: ${note}` : ""}\n`);
    },
  };
}
