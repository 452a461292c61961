// A second process for database_lock_test.ts: opens the embedded database named by its argument, says
// so, and holds it until killed.

import { openDatabase } from "../../src/store/db/mod.ts";

const db = await openDatabase(Deno.args[0]);
console.log(`holding ${db.location} as ${Deno.pid}`);
setInterval(() => {}, 60_000); // keeps the process (and the lock) alive until killed
