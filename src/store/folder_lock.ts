/**
 * {@linkcode lockFolder}: an OS-level lock (flock) on a folder that belongs to one process — an embedded
 * database (PGlite keeps its state in memory and writes it back, so two processes on one folder each see
 * only their own writes and overwrite the other's), or a trainer's scratch folder. The lock file
 * `weightlora.lock` in the folder is locked exclusively for as long as the owner holds it and records the
 * holder (pid, command, since) for the message a second opener gets. The OS drops the lock when the holder
 * dies, even by kill -9, so a folder whose lock can be taken has no live owner.
 *
 * @module
 */

/** The lock file's name inside the database folder. */
export const LOCK_FILE = "weightlora.lock";

/** Thrown by {@linkcode lockFolder} when another holder has the folder. */
export class FolderLockedError extends Error {
  /** The holder, as described in the message (`process 123 (src/cli/serve.ts …, since …)`). */
  readonly holder: string;
  /**
   * @param message The message.
   * @param holder Who holds the lock.
   */
  constructor(message: string, holder: string) {
    super(message);
    this.name = "FolderLockedError";
    this.holder = holder;
  }
}

/** Options of {@linkcode lockFolder}. */
export interface LockFolderOptions {
  /**
   * What the folder is, for the message (`Cannot open the <what> in <folder>: it is in use by …`).
   * @default {"folder"}
   */
  what?: string;
  /** A sentence appended to the message: what to do instead. */
  hint?: string;
}

/** A held folder lock. */
export interface FolderLock {
  /** Releases the lock (idempotent). */
  release(): void;
}

/** Folders locked by this process (flock conflicts across file descriptors, this makes it explicit). */
const held = new Set<string>();

/** Who holds a lock, as written in the lock file. */
interface Holder {
  pid: number;
  command: string;
  since: string;
}

function describe(text: string): string {
  try {
    const h = JSON.parse(text) as Holder;
    if (typeof h.pid === "number") return `process ${h.pid} (${h.command}, since ${h.since})`;
  } catch {
    // a holder still writing its record, or an older file: fall through
  }
  return "another process (its record is unreadable)";
}

function command(): string {
  let main = Deno.mainModule;
  try {
    main = new URL(main).pathname.split("/").slice(-3).join("/");
  } catch {
    // keep it as is
  }
  const args = Deno.args.map((a) => a.replace(/:\/\/[^@/]*@/, "://…@"));
  return [main, ...args].join(" ");
}

/**
 * Locks a folder for this process, or throws naming the holder. The lock is not waited for.
 *
 * @param folder The folder (it must exist).
 * @param options What the folder is and what to do instead, for the message.
 * @returns The lock, to release on close.
 * @throws {FolderLockedError} When another process, or another lock of this process, holds it.
 * @example
 * ```ts
 * import { lockFolder } from "./folder_lock.ts";
 * const dir = await Deno.makeTempDir();
 * const lock = await lockFolder(dir, { what: "scratch folder" });
 * const again = await lockFolder(dir).then(() => true, () => false);
 * lock.release();
 * console.assert(!again);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function lockFolder(folder: string, options: LockFolderOptions = {}): Promise<FolderLock> {
  const real = await Deno.realPath(folder);
  const path = `${real}/${LOCK_FILE}`;
  const refuse = (holder: string): never => {
    const hint = options.hint ? `. ${options.hint}` : "";
    throw new FolderLockedError(
      `Cannot open the ${options.what ?? "folder"} in ${folder}: it is in use by ${holder}${hint}`,
      holder,
    );
  };
  if (held.has(real)) {
    let text = "";
    try {
      text = await Deno.readTextFile(path);
    } catch {
      // described below
    }
    refuse(`this process: ${describe(text)}, opened a second time`);
  }
  const file = await Deno.open(path, { read: true, write: true, create: true });
  let locked = false;
  try {
    locked = await file.tryLock(true);
    if (!locked) {
      const bytes = new Uint8Array(4096);
      const n = (await file.read(bytes)) ?? 0;
      refuse(describe(new TextDecoder().decode(bytes.subarray(0, n))));
    }
    const record: Holder = { pid: Deno.pid, command: command(), since: new Date().toISOString() };
    await file.truncate(0);
    await file.seek(0, Deno.SeekMode.Start);
    await file.write(new TextEncoder().encode(JSON.stringify(record) + "\n"));
    await file.syncData();
  } catch (e) {
    if (locked) file.unlockSync();
    file.close();
    throw e;
  }
  held.add(real);
  let released = false;
  return {
    release() {
      if (released) return;
      released = true;
      held.delete(real);
      try {
        file.unlockSync();
      } finally {
        file.close();
      }
    },
  };
}
