/**
 * `/console/playground`: one prompt, answered by the base model and by a chosen adapter side by side
 * (greedy or sampled). With script both answers stream in as they are generated; without, the form posts
 * and the page comes back with both answers.
 *
 * @module
 */

import { type Child, Fragment } from "hono/jsx";
import { Csrf, type Flash, Layout } from "../layout.tsx";

/** The playground form's values. */
export interface PlaygroundValues {
  /** The prompt. */
  prompt: string;
  /** The adapter to compare with the base model. */
  adapter: string;
  /** `greedy` (temperature 0) or `sampled`. */
  mode: "greedy" | "sampled";
  /** Sampling temperature. */
  temperature: number;
  /** Tokens to generate. */
  maxTokens: number;
}

/** Props of {@linkcode PlaygroundPage}. */
export interface PlaygroundPageProps {
  /** The tenant and CSRF token. */
  session: { tenant: string; csrf: string };
  /** The base model's id. */
  base: string;
  /** The tenant's adapters. */
  adapters: string[];
  /** The form's values. */
  values: PlaygroundValues;
  /** Answers of a posted form (no script). */
  answers?: { base: string; adapter: string };
  /** Last action's message. */
  flash?: Flash;
  /** Asset version. */
  assetVersion: string;
}

/**
 * The playground page.
 *
 * @param props Models, values, answers.
 * @returns The page.
 */
export function PlaygroundPage(props: PlaygroundPageProps): Child {
  const { values } = props;
  return (
    <Layout
      title="Playground"
      current="playground"
      session={props.session}
      flash={props.flash}
      assetVersion={props.assetVersion}
    >
      <form
        class="card"
        id="playground"
        method="post"
        action="/console/playground"
        data-stream="/console/playground/stream"
      >
        <Csrf token={props.session.csrf} />
        <label for="prompt">Prompt</label>
        <textarea id="prompt" name="prompt" rows={3} required>{values.prompt}</textarea>
        <div class="grid2">
          <div>
            <label for="adapter">Adapter</label>
            <select id="adapter" name="adapter" required>
              {props.adapters.map((a) => (
                <Fragment key={a}>
                  <option value={a} selected={a === values.adapter}>{a}</option>
                </Fragment>
              ))}
            </select>
          </div>
          <fieldset>
            <legend>Decoding</legend>
            <label class="inline">
              <input type="radio" name="mode" value="greedy" checked={values.mode === "greedy"} /> greedy
            </label>
            <label class="inline">
              <input type="radio" name="mode" value="sampled" checked={values.mode === "sampled"} /> sampled
            </label>
          </fieldset>
          <div>
            <label for="temperature">Temperature (sampled)</label>
            <input
              id="temperature"
              name="temperature"
              inputmode="decimal"
              value={String(values.temperature)}
            />
          </div>
          <div>
            <label for="max_tokens">Max tokens</label>
            <input id="max_tokens" name="max_tokens" inputmode="numeric" value={String(values.maxTokens)} />
          </div>
        </div>
        <button type="submit" disabled={props.adapters.length === 0}>Compare</button>
        {props.adapters.length === 0 && <p class="muted">Upload or train an adapter first.</p>}
      </form>
      <div class="columns answers">
        <section class="card" aria-labelledby="h-base">
          <h2 id="h-base">Base · {props.base}</h2>
          <output id="out-base" class="answer" data-model={props.base} aria-live="polite">
            {props.answers?.base ?? ""}
          </output>
        </section>
        <section class="card" aria-labelledby="h-adapter">
          <h2 id="h-adapter">
            Adapter · <span id="adapter-name">{values.adapter || "–"}</span>
          </h2>
          <output id="out-adapter" class="answer" aria-live="polite">{props.answers?.adapter ?? ""}</output>
        </section>
      </div>
    </Layout>
  );
}
