// An OS-level lock (flock) on an embedded database folder: PGlite keeps its state in memory and writes
// it back, so two processes on one folder each see only their own writes and overwrite the other's. The
// lock file `weightlora.lock` in the folder is locked exclusively for the lifetime of the open database
// and records its holder (pid, command, since) for the message a second opener gets. The OS drops the
// lock when the holder dies, even by kill -9.

/** The lock file's name inside the database folder. */
export const LOCK_FILE = "weightlora.lock";

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
 * Locks an embedded database folder for this process, or throws naming the holder.
 *
 * @param folder The database folder (created by the caller).
 * @returns The lock, to release on close.
 * @throws {Error} When another process or another open database in this process holds it.
 */
export async function lockFolder(folder: string): Promise<FolderLock> {
  const real = await Deno.realPath(folder);
  const path = `${real}/${LOCK_FILE}`;
  const refuse = (holder: string): never => {
    throw new Error(
      `Cannot open the embedded database in ${folder}: it is in use by ${holder}. An embedded database ` +
        "belongs to one process: stop that one, or share a Postgres server (--db postgres://… or DATABASE_URL)",
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
