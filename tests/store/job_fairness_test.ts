// The job queue hands trainers jobs fairly across tenants: a tenant with a job running waits behind
// another tenant's first job, whatever the order they were queued in.

import assert from "node:assert/strict";
import { FileStore, JobStore } from "../../src/store/db/mod.ts";
import { BACKENDS } from "../jobs/_db.ts";

for (const backend of BACKENDS) {
  Deno.test({
    name: `job queue: claim order is fair across tenants; active jobs are counted (${backend.name})`,
    sanitizeResources: false,
    sanitizeOps: false,
    async fn(t) {
      const test = await backend.create(t);
      if (!test) return;
      try {
        const files = new FileStore(test.db);
        const jobs = new JobStore(test.db);
        const content = new TextEncoder().encode('{"text": "hello"}\n');
        const fileOf = async (tenant: string) =>
          (await files.create({ tenant, filename: "a.jsonl", purpose: "fine-tune", content, rows: 1 })).id;
        const newJob = (tenant: string, trainingFile: string) => ({
          tenant,
          model: "stories260K",
          trainingFile,
          method: { type: "lora" },
          options: { steps: 3 },
          totalSteps: 3,
        });
        const flood = await fileOf("flood");
        const polite = await fileOf("polite");
        const floodJobs = [];
        for (let i = 0; i < 4; i++) {
          floodJobs.push(await jobs.create(newJob("flood", flood)));
          await new Promise((r) => setTimeout(r, 5));
        }
        const politeJob = await jobs.create(newJob("polite", polite));
        assert.equal(await jobs.activeCount("flood"), 4);
        assert.equal(await jobs.activeCount("polite"), 1);
        assert.equal(await jobs.activeCount("nobody"), 0);

        const first = await jobs.claim("w1", { leaseSeconds: 60 });
        assert.equal(first?.id, floodJobs[0].id, "the oldest job goes first");
        const second = await jobs.claim("w2", { leaseSeconds: 60 });
        assert.equal(
          second?.id,
          politeJob.id,
          "a tenant with nothing running passes a tenant with a job running",
        );
        const third = await jobs.claim("w3", { leaseSeconds: 60 });
        assert.equal(third?.id, floodJobs[1].id, "then the oldest again");
        assert.equal(await jobs.activeCount("flood"), 4);
        await jobs.cancel("flood", floodJobs[3].id);
        assert.equal(await jobs.activeCount("flood"), 3);
      } finally {
        await test.dispose();
      }
    },
  });
}
