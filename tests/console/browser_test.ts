// The console in a real browser (Debian's chromium, driven by puppeteer-core): sign in, upload an adapter,
// upload a file and start a short stories260K job, watch the loss curve get points and the gate heatmap
// appear, compare base and adapter in the playground (the streamed texts are the API's own answers), sign
// out; a second tenant's session sees none of the first's things; a request without a session lands on
// the sign-in page. The page makes no request outside the console's origin, is keyboard-navigable and fits a
// phone's width.
//
// WEIGHTLORA_SCREENSHOTS=docs/console also writes a screenshot of each page and page_metrics.json (page
// weight and time to first render, measured by the browser) into that folder. Without chromium the test
// skips with a message, except under CI=true, where it fails.

import assert from "node:assert/strict";
import puppeteer, { type Browser, type Page } from "puppeteer-core";
import { isCi } from "../_util/fixtures.ts";
import { randomAdapterFiles } from "../serve/_fixtures.ts";
import { dogRows } from "../train/_stories.ts";
import { type ConsoleServer, KEYS, startConsoleServer } from "./_console.ts";

const CHROMIUM_PATHS = ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"];

function findChromium(): string | undefined {
  const wanted = Deno.env.get("CHROMIUM_PATH");
  for (const path of wanted ? [wanted] : CHROMIUM_PATHS) {
    try {
      if (Deno.statSync(path).isFile) return path;
    } catch {
      // absent
    }
  }
  return undefined;
}

const SHOTS = Deno.env.get("WEIGHTLORA_SCREENSHOTS");

async function writeAtomic(path: string, data: Uint8Array | string): Promise<void> {
  const tmp = `${path}.tmp-${crypto.randomUUID().slice(0, 8)}`;
  if (typeof data === "string") await Deno.writeTextFile(tmp, data);
  else await Deno.writeFile(tmp, data);
  await Deno.rename(tmp, path);
}

async function shot(page: Page, name: string): Promise<void> {
  if (!SHOTS) return;
  await Deno.mkdir(SHOTS, { recursive: true });
  const png = await page.screenshot({ fullPage: true, type: "png" });
  await writeAtomic(`${SHOTS}/${name}.png`, new Uint8Array(png));
}

/** Page weight (bytes over the wire: document and every resource) and paint times of the current page. */
interface PageMetrics {
  page: string;
  document_bytes: number;
  resources: Record<string, number>;
  transfer_bytes: number;
  decoded_bytes: number;
  requests: number;
  first_paint_ms: number | null;
  first_contentful_paint_ms: number | null;
  dom_content_loaded_ms: number;
}

async function measure(page: Page, name: string): Promise<PageMetrics> {
  // the paint entries appear once the page has painted
  await page.waitForFunction(() => performance.getEntriesByType("paint").length > 0, { timeout: 10_000 })
    .catch(() => {});
  return await page.evaluate((name) => {
    const nav = performance.getEntriesByType("navigation")[0] as PerformanceNavigationTiming;
    const resources = performance.getEntriesByType("resource") as PerformanceResourceTiming[];
    const paint = (n: string) => performance.getEntriesByName(n)[0]?.startTime ?? null;
    return {
      page: name,
      document_bytes: nav.transferSize,
      resources: Object.fromEntries(resources.map((r) => [new URL(r.name).pathname, r.transferSize])),
      transfer_bytes: nav.transferSize + resources.reduce((n, r) => n + r.transferSize, 0),
      decoded_bytes: nav.decodedBodySize + resources.reduce((n, r) => n + r.decodedBodySize, 0),
      requests: 1 + resources.length,
      first_paint_ms: paint("first-paint"),
      first_contentful_paint_ms: paint("first-contentful-paint"),
      dom_content_loaded_ms: nav.domContentLoadedEventEnd,
    };
  }, name);
}

async function signIn(page: Page, url: string, key: string): Promise<void> {
  await page.goto(`${url}/console`);
  assert.match(page.url(), /\/console\/login$/);
  await page.type("#api_key", key);
  await Promise.all([page.waitForNavigation(), page.click("form[action='/console/login'] button")]);
  assert.match(page.url(), /\/console\/adapters$/, await page.content());
}

async function submit(page: Page, formSelector: string): Promise<void> {
  await Promise.all([page.waitForNavigation(), page.click(`${formSelector} button[type=submit]`)]);
}

Deno.test({
  name: "console in a browser: sign in, upload, train and watch, compare, sign out, isolation",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const executablePath = findChromium();
    if (!executablePath) {
      const message = `"${t.name}" needs chromium (apt-get install -y chromium, or set CHROMIUM_PATH)`;
      if (isCi()) throw new Error(message);
      console.warn(`skipped: ${message}`);
      return;
    }
    const server: ConsoleServer | undefined = await startConsoleServer(t, { train: true });
    if (!server) return;
    const { url } = server;
    const work = await Deno.makeTempDir({ prefix: "weightlora-console-" });
    let browser: Browser | undefined;
    const metrics: PageMetrics[] = [];
    const foreign: string[] = [];
    try {
      browser = await puppeteer.launch({
        executablePath,
        headless: true,
        args: ["--no-sandbox", "--disable-dev-shm-usage", "--no-first-run", "--disable-extensions"],
      });
      const page = await browser.newPage();
      await page.setViewport({ width: 1280, height: 900 });
      // every page is measured cold: its weight is everything it loads
      await page.setCacheEnabled(false);
      page.on("request", (r) => {
        if (!r.url().startsWith(url) && !r.url().startsWith("data:")) foreign.push(r.url());
      });
      const files = randomAdapterFiles(server.engine.config, { seed: 7, scale: 0.3 });
      await Deno.writeFile(`${work}/adapter_config.json`, files.config);
      await Deno.writeFile(`${work}/adapter_model.safetensors`, files.weights);
      await Deno.writeTextFile(`${work}/dog.jsonl`, dogRows(16));

      await t.step("a request without a session lands on the sign-in page", async () => {
        await page.goto(`${url}/console/jobs`);
        assert.match(page.url(), /\/console\/login\?next=%2Fconsole%2Fjobs$/);
        metrics.push(await measure(page, "login"));
        await shot(page, "login");
        // keyboard: the key field has the focus; Tab reaches the button
        assert.equal(await page.evaluate(() => document.activeElement?.id), "api_key");
        await page.keyboard.press("Tab");
        assert.equal(await page.evaluate(() => document.activeElement?.textContent), "Sign in");
      });

      await t.step("sign in and upload an adapter", async () => {
        await signIn(page, url, KEYS.acme);
        assert.equal(await page.$eval(".tenant", (e) => e.textContent), "acme");
        // keyboard: the first Tab reaches the skip link, which moves the focus to the content
        await page.keyboard.press("Tab");
        assert.equal(await page.evaluate(() => document.activeElement?.className), "skip");
        await page.keyboard.press("Enter");
        assert.equal(await page.evaluate(() => document.activeElement?.id), "main");
        await page.type("#adapter-name", "story");
        const config = await page.$("input#adapter-config");
        const weights = await page.$("input#adapter-weights");
        await config!.uploadFile(`${work}/adapter_config.json`);
        await weights!.uploadFile(`${work}/adapter_model.safetensors`);
        await submit(page, "#upload-adapter");
        assert.match(
          await page.$eval(".flash", (e) => e.textContent!),
          /Uploaded adapter story: 15 sites, rank 4/,
        );
        const row = await page.$eval(
          "tr[data-adapter=story]",
          (tr) => [...tr.children].map((c) => c.textContent),
        );
        assert.equal(row[2], "uploaded");
        assert.equal(row[3], "15 / 35");
        assert.equal(row[4], "4");
        // the key is nowhere a script could read it
        const cookies = await page.cookies();
        assert.ok(
          cookies.every((c) => c.httpOnly && c.sameSite === "Strict" && !c.value.includes(KEYS.acme)),
        );
        assert.ok(!(await page.content()).includes(KEYS.acme));
        assert.equal(await page.evaluate(() => document.cookie), "", "HTTP-only: invisible to scripts");
      });

      let jobUrl = "";
      await t.step("start a short job and watch the curve and the heatmap", async () => {
        await page.goto(`${url}/console/jobs`);
        await page.$("input#file-input").then((input) => input!.uploadFile(`${work}/dog.jsonl`));
        await submit(page, "#upload-file");
        assert.match(await page.$eval(".flash", (e) => e.textContent!), /Uploaded dog\.jsonl as file-/);
        const fileId = await page.$eval("#job-file", (s) => (s as HTMLSelectElement).value);
        await page.select("#job-valid", fileId);
        await page.select("#job-method", "weightlora");
        for (
          const [name, value] of Object.entries({
            steps: "8",
            rank: "2",
            k: "3",
            batch_size: "4",
            select_steps: "2",
          })
        ) {
          await page.type(`#job-${name}`, value);
        }
        await page.type("#job-suffix", "dog");
        await submit(page, "#start-job");
        jobUrl = page.url();
        assert.match(jobUrl, /\/console\/jobs\/ftjob-[\w-]+$/);
        // the curve gets points from the event stream
        await page.waitForFunction(
          () => Number(document.querySelector(".chart svg")?.getAttribute("data-points") ?? 0) >= 2,
          { timeout: 180_000 },
        );
        // the stream ends with the job; the gate heatmap shows exactly K = 3 survivors
        await page.waitForFunction(() => document.getElementById("loss")?.dataset.streamDone === "true", {
          timeout: 300_000,
        });
        await page.waitForFunction(
          () => document.getElementById("job-status")?.textContent === "succeeded",
          { timeout: 30_000 },
        );
        await page.waitForFunction(() => document.querySelectorAll(".heatmap rect.cell.kept").length === 3, {
          timeout: 30_000,
        });
        const points = await page.$eval(".chart svg", (s) => ({
          train: Number(s.getAttribute("data-points")),
          eval: Number(s.getAttribute("data-eval-points")),
        }));
        assert.equal(points.train, 8, "a point per step");
        assert.ok(points.eval >= 1, "the validation loss at the end");
        const markers = await page.$$eval("#markers li", (li) => li.map((e) => e.textContent));
        assert.ok(markers.some((m) => /selection end/.test(m ?? "")), `markers: ${markers}`);
        assert.equal(await page.$$eval(".heatmap rect.cell", (r) => r.length), 35, "5 layers × 7 modules");
        assert.match(await page.$eval("dd.saved", (e) => e.textContent!), /parameters \(\d+\.\d %\)/);
        const stat = await page.$eval("dd[data-stat=tokens_per_s]", (e) => Number(e.textContent));
        assert.ok(stat > 0, "tokens/s shown");
        // a fresh load of the finished job: the curve is rebuilt from the stored events
        await page.goto(jobUrl);
        await page.waitForFunction(() => document.getElementById("loss")?.dataset.streamDone === "true");
        assert.equal(await page.$eval(".chart svg", (s) => Number(s.getAttribute("data-points"))), 8);
        assert.equal(await page.$eval(".heatmap", (e) => e.getAttribute("data-frame")), "after_selection");
        metrics.push(await measure(page, "job"));
        await shot(page, "job");
        await page.goto(`${url}/console/jobs`);
        assert.equal(await page.$eval(`tr[data-job] .status`, (e) => e.textContent), "succeeded");
        metrics.push(await measure(page, "jobs"));
        await shot(page, "jobs");
        await page.goto(`${url}/console/adapters`);
        const made = await page.$eval(
          "tr[data-adapter^='ft-dog-']",
          (tr) => [...tr.children].map((c) => c.textContent),
        );
        assert.equal(made[2], "weightlora");
        assert.equal(made[3], "3 / 35");
        metrics.push(await measure(page, "adapters"));
        await shot(page, "adapters");
      });

      await t.step("a WeightLoRA+ job marks its rank doublings", async () => {
        await page.goto(`${url}/console/jobs`);
        await page.select("#job-method", "weightlora-plus");
        for (const [name, value] of Object.entries({ steps: "22", rank: "2", batch_size: "4" })) {
          await page.type(`#job-${name}`, value);
        }
        await submit(page, "#start-job");
        assert.match(page.url(), /\/console\/jobs\/ftjob-[\w-]+$/, await page.content());
        await page.waitForFunction(() => document.getElementById("loss")?.dataset.streamDone === "true", {
          timeout: 300_000,
        });
        const markers = await page.$$eval("#markers li", (li) => li.map((e) => e.textContent));
        assert.ok(markers.includes("Step 10: rank doubling 1"), `markers: ${markers}`);
        assert.ok(markers.includes("Step 20: rank doubling 2"), `markers: ${markers}`);
        assert.equal(
          await page.$eval(".chart svg", (s) => s.getAttribute("data-markers")),
          String(markers.length),
        );
        await page.waitForFunction(() =>
          document.querySelector(".heatmap")?.getAttribute("data-source") === "result"
        );
        const frames = await page.$eval(".heatmap .frames", (e) => e.textContent!);
        assert.match(frames, /after_round_1.*after_round_2.*final/);
      });

      await t.step(
        "a running job's gates are kept as they change, to step back through selection",
        async () => {
          // a job of a model this server's runner does not train, claimed by a stand-in trainer that writes
          // checkpoints and events as a real one does
          const file = (await server.files.list("acme"))[0];
          const sites = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj"]
            .concat(["mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"])
            .flatMap((m) => [0, 1, 2, 3, 4].map((l) => `model.layers.${l}.${m}`));
          const job = await server.jobs.create({
            tenant: "acme",
            model: "not-trained-here",
            trainingFile: file.id,
            method: { type: "weightlora", weightlora: { hyperparameters: { steps: 10 } } },
            options: { rank: 2, optimizer: "adamw" },
            totalSteps: 10,
          });
          const claimed = await server.jobs.claim("stand-in", {
            leaseSeconds: 600,
            models: ["not-trained-here"],
          });
          assert.equal(claimed?.id, job.id);
          const checkpoint = async (step: number) => {
            const state = {
              step,
              sites: sites.map((name, i) => ({ name, rank: 2, gate: (i % step) / step, active: true })),
            };
            assert.ok(
              await server.jobs.saveCheckpoint(job.id, "stand-in", {
                step,
                trainerState: new TextEncoder().encode(JSON.stringify(state)),
                trainingState: new Uint8Array(),
              }),
            );
            await server.jobs.addEvent(job.id, {
              level: "info",
              type: "metrics",
              message: `Step ${step}/10`,
              data: {
                step,
                total_steps: 10,
                train_loss: 3 - step / 10,
                learning_rate: 1e-3,
                tokens_per_s: 1000,
                phase: "select",
                active_adapters: 35,
              },
            });
          };
          await checkpoint(2);
          await page.goto(`${url}/console/jobs/${job.id}`);
          await page.waitForFunction(() =>
            document.querySelector("#gate-history")?.textContent?.includes("step 2")
          );
          await checkpoint(4);
          await page.waitForFunction(
            () => document.querySelector(".heatmap")?.getAttribute("data-frame") === "step 4",
            {
              timeout: 30_000,
            },
          );
          const chips = await page.$$eval("#gate-history button", (b) => b.map((e) => e.textContent));
          assert.deepEqual(chips, ["step 2", "step 4", "latest"]);
          await page.click("#gate-history button:first-of-type");
          assert.equal(await page.$eval(".heatmap", (e) => e.getAttribute("data-frame")), "step 2");
          const gate = (site: string) =>
            page.$eval(`rect[data-site="${site}"]`, (e) => Number(e.getAttribute("data-gate")));
          assert.equal(await gate("model.layers.1.self_attn.q_proj"), 0.5, "step 2's value");
          await page.click("#gate-history button:last-of-type");
          await page.waitForFunction(() =>
            document.querySelector(".heatmap")?.getAttribute("data-frame") === "step 4"
          );
          assert.equal(await gate("model.layers.1.self_attn.q_proj"), 0.25, "step 4's value");
          await server.jobs.cancel("acme", job.id);
        },
      );

      await t.step("compare base and adapter in the playground", async () => {
        await page.goto(`${url}/console/playground?adapter=story`);
        await page.$eval("#prompt", (e) => ((e as HTMLTextAreaElement).value = ""));
        await page.type("#prompt", "Once upon a time");
        await page.$eval("#max_tokens", (e) => ((e as HTMLInputElement).value = "24"));
        await page.click("#playground button[type=submit]");
        await page.waitForFunction(
          () =>
            ["out-base", "out-adapter"].every((id) => document.getElementById(id)?.dataset.state === "done"),
          { timeout: 60_000 },
        );
        const shown = {
          base: await page.$eval("#out-base", (e) => e.textContent),
          adapter: await page.$eval("#out-adapter", (e) => e.textContent),
        };
        // the API's own greedy answers, for the same prompt
        const answer = async (model: string) => {
          const res = await fetch(`${url}/v1/completions`, {
            method: "POST",
            headers: { authorization: `Bearer ${KEYS.acme}`, "content-type": "application/json" },
            body: JSON.stringify({ model, prompt: "Once upon a time", max_tokens: 24, temperature: 0 }),
          });
          return (await res.json()).choices[0].text;
        };
        assert.equal(shown.base, await answer("stories260K"));
        assert.equal(shown.adapter, await answer("story"));
        assert.notEqual(shown.base, shown.adapter, "the adapter answers differently");
        metrics.push(await measure(page, "playground"));
        await shot(page, "playground");
      });

      await t.step("readable on a phone", async () => {
        await page.setViewport({ width: 390, height: 844, isMobile: true, hasTouch: true });
        for (
          const path of ["/console/adapters", "/console/jobs", jobUrl.replace(url, ""), "/console/playground"]
        ) {
          await page.goto(`${url}${path}`);
          const overflow = await page.evaluate(() =>
            document.documentElement.scrollWidth - globalThis.innerWidth
          );
          assert.ok(overflow <= 0, `${path} is ${overflow} px wider than a phone`);
        }
        await page.goto(jobUrl);
        await page.waitForFunction(() => document.getElementById("loss")?.dataset.streamDone === "true");
        await shot(page, "job_phone");
        await page.setViewport({ width: 1280, height: 900 });
      });

      await t.step("a second tenant's session sees none of the first's things", async () => {
        const other = await browser!.createBrowserContext();
        const beta = await other.newPage();
        await signIn(beta, url, KEYS.beta);
        assert.equal(await beta.$$eval("tr[data-adapter]", (r) => r.length), 0);
        await beta.goto(`${url}/console/jobs`);
        assert.equal(await beta.$$eval("tr[data-job]", (r) => r.length), 0);
        assert.equal(await beta.$$eval("#files li", (r) => r.length), 0);
        const res = await beta.goto(jobUrl);
        assert.equal(res?.status(), 404);
        assert.match(await beta.$eval("#not-found", (e) => e.textContent!), /No such fine-tuning job/);
        await beta.goto(`${url}/console/playground?adapter=story`);
        assert.equal(await beta.$$eval("#adapter option", (o) => o.length), 0);
        await other.close();
      });

      await t.step("delete an adapter, after a confirmation", async () => {
        await page.goto(`${url}/console/adapters`);
        const button = "tr[data-adapter=story] button.danger";
        const dismissed = new Promise<string>((resolve) =>
          page.once("dialog", (d) => {
            resolve(d.message());
            void d.dismiss();
          })
        );
        await page.click(button);
        assert.equal(await dismissed, "Delete adapter story?");
        assert.equal(await page.$$eval("tr[data-adapter=story]", (r) => r.length), 1, "kept when dismissed");
        page.once("dialog", (d) => void d.accept());
        await Promise.all([page.waitForNavigation(), page.click(button)]);
        assert.match(await page.$eval(".flash", (e) => e.textContent!), /Deleted adapter story/);
        assert.equal(await page.$$eval("tr[data-adapter=story]", (r) => r.length), 0);
      });

      await t.step("sign out", async () => {
        await submit(page, "form.signout");
        assert.match(page.url(), /\/console\/login\?signed_out$/);
        assert.match(await page.$eval(".flash", (e) => e.textContent!), /Signed out/);
        await page.goto(`${url}/console/adapters`);
        assert.match(page.url(), /\/console\/login\?next=/);
      });

      assert.deepEqual(foreign, [], "no request leaves the console's origin");
      if (SHOTS) await writeAtomic(`${SHOTS}/page_metrics.json`, JSON.stringify(metrics, null, 2) + "\n");
      console.log(JSON.stringify(metrics));
    } finally {
      await browser?.close();
      await server.close();
      await Deno.remove(work, { recursive: true }).catch(() => {});
    }
  },
});
