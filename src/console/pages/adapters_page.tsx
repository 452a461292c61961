/**
 * `/console/adapters`: the tenant's adapters (name, base, method, sites kept of the candidates, ranks,
 * trainable parameters, bytes, created), an upload form for the two PEFT files and a delete button per
 * adapter. Plain forms: everything works without JavaScript.
 *
 * @module
 */

import type { Child } from "hono/jsx";
import { Csrf, type Flash, formatBytes, formatCount, Layout, Time } from "../layout.tsx";

/** One adapter row. */
export interface AdapterRow {
  /** Adapter name (the `model` of inference requests). */
  name: string;
  /** Base model id. */
  base: string;
  /** The training method of the job that made it, or `uploaded`. */
  method: string;
  /** Adapted sites. */
  sites: number;
  /** Candidate sites of the base model. */
  candidates: number;
  /** Ranks as text. */
  ranks: string;
  /** Trainable parameters. */
  parameters: number;
  /** Bytes of both files. */
  bytes: number;
  /** Upload time, Unix seconds. */
  createdAt: number;
  /** The job that made it, when one did. */
  job?: string;
}

/** Props of {@linkcode AdaptersPage}. */
export interface AdaptersPageProps {
  /** The tenant and CSRF token. */
  session: { tenant: string; csrf: string };
  /** The adapters, newest first. */
  adapters: AdapterRow[];
  /** Whether the store refuses uploads and deletions. */
  readOnly: boolean;
  /** Last action's message. */
  flash?: Flash;
  /** Asset version. */
  assetVersion: string;
}

/**
 * The adapters page.
 *
 * @param props Adapters and session.
 * @returns The page.
 */
export function AdaptersPage(props: AdaptersPageProps): Child {
  const { session } = props;
  return (
    <Layout
      title="Adapters"
      current="adapters"
      session={session}
      flash={props.flash}
      assetVersion={props.assetVersion}
    >
      <div class="scroll">
        <table id="adapters">
          <caption>{props.adapters.length} adapter{props.adapters.length === 1 ? "" : "s"}</caption>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Base</th>
              <th scope="col">Method</th>
              <th scope="col" class="num">Sites kept / candidates</th>
              <th scope="col">Ranks</th>
              <th scope="col" class="num">Trainable parameters</th>
              <th scope="col" class="num">Bytes</th>
              <th scope="col">Created (UTC)</th>
              <th scope="col">
                <span class="sr">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {props.adapters.map((a) => (
              <tr data-adapter={a.name}>
                <th scope="row">{a.name}</th>
                <td>{a.base}</td>
                <td>{a.job ? <a href={`/console/jobs/${a.job}`}>{a.method}</a> : a.method}</td>
                <td class="num">{a.sites} / {a.candidates}</td>
                <td>{a.ranks}</td>
                <td class="num">{formatCount(a.parameters)}</td>
                <td class="num">{formatBytes(a.bytes)}</td>
                <td>
                  <Time seconds={a.createdAt} />
                </td>
                <td>
                  {!props.readOnly && (
                    <form
                      method="post"
                      action={`/console/adapters/${encodeURIComponent(a.name)}/delete`}
                      data-confirm={`Delete adapter ${a.name}?`}
                    >
                      <Csrf token={session.csrf} />
                      <button type="submit" class="danger" aria-label={`Delete adapter ${a.name}`}>
                        Delete
                      </button>
                    </form>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {props.readOnly
        ? <p class="muted">This server's adapter store is read-only: uploads and deletions are disabled.</p>
        : (
          <form
            class="card"
            id="upload-adapter"
            method="post"
            action="/console/adapters"
            enctype="multipart/form-data"
          >
            <h2>Upload a PEFT LoRA adapter</h2>
            <Csrf token={session.csrf} />
            <label for="adapter-name">Name</label>
            <input id="adapter-name" name="name" required maxlength={64} autocomplete="off" />
            <label for="adapter-config">adapter_config.json</label>
            <input id="adapter-config" name="adapter_config.json" type="file" accept=".json" required />
            <label for="adapter-weights">adapter_model.safetensors</label>
            <input
              id="adapter-weights"
              name="adapter_model.safetensors"
              type="file"
              accept=".safetensors"
              required
            />
            <button type="submit">Upload</button>
          </form>
        )}
    </Layout>
  );
}
