/**
 * The console's page shell and small shared components: the document head (own stylesheet and script only —
 * the console makes no external request), a skip link and navigation for keyboard users, the signed-in
 * tenant with its sign-out form, and the flash message of the last action.
 *
 * @module
 */

import type { Child } from "hono/jsx";
import { CSRF_FIELD } from "./session.ts";

/** A message shown once, after a form's redirect (or with a refused form). */
export interface Flash {
  /** `ok` (green) or `error` (red). */
  kind: "ok" | "error";
  /** The text (an API validation message as the API wrote it). */
  text: string;
}

/** Props of {@linkcode Layout}. */
export interface LayoutProps {
  /** The page title. */
  title: string;
  /** The navigation entry to mark current. */
  current?: "adapters" | "jobs" | "playground";
  /** The signed-in tenant and its CSRF token (absent on the sign-in page). */
  session?: { tenant: string; csrf: string };
  /** A message to show above the content. */
  flash?: Flash;
  /** Asset version (cache busting). */
  assetVersion: string;
  /** The content. */
  children?: Child;
}

/**
 * A whole page.
 *
 * @param props Title, session, flash and content.
 * @returns The document.
 */
export function Layout(props: LayoutProps): Child {
  const nav = [
    ["adapters", "/console/adapters", "Adapters"],
    ["jobs", "/console/jobs", "Fine-tuning"],
    ["playground", "/console/playground", "Playground"],
  ] as const;
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <meta name="color-scheme" content="light dark" />
        <title>{`${props.title} · weightlora console`}</title>
        <link rel="icon" href="data:," />
        <link rel="stylesheet" href={`/console/assets/console.css?v=${props.assetVersion}`} />
        <script src={`/console/assets/console.js?v=${props.assetVersion}`} defer></script>
      </head>
      <body>
        <a class="skip" href="#main">Skip to content</a>
        <header class="top">
          <span class="brand">weightlora</span>
          {props.session && (
            <nav aria-label="Console">
              <ul>
                {nav.map(([key, href, label]) => (
                  <li>
                    <a href={href} aria-current={props.current === key ? "page" : undefined}>{label}</a>
                  </li>
                ))}
              </ul>
            </nav>
          )}
          {props.session && (
            <form class="signout" method="post" action="/console/logout">
              <input type="hidden" name={CSRF_FIELD} value={props.session.csrf} />
              <span class="tenant" title="Signed-in tenant">{props.session.tenant}</span>
              <button type="submit">Sign out</button>
            </form>
          )}
        </header>
        <main id="main" tabindex={-1}>
          <h1>{props.title}</h1>
          {props.flash && (
            <p class={`flash ${props.flash.kind}`} role={props.flash.kind === "error" ? "alert" : "status"}>
              {props.flash.text}
            </p>
          )}
          {props.children}
        </main>
      </body>
    </html>
  );
}

/**
 * The hidden CSRF field of a form.
 *
 * @param props The session's token.
 * @returns The input.
 */
export function Csrf(props: { token: string }): Child {
  return <input type="hidden" name={CSRF_FIELD} value={props.token} />;
}

/**
 * A Unix time as a `<time>` (UTC, to the minute).
 *
 * @param props Seconds since the epoch.
 * @returns The element.
 */
export function Time(props: { seconds: number | null }): Child {
  if (props.seconds === null) return <span>–</span>;
  const iso = new Date(props.seconds * 1000).toISOString();
  return <time datetime={iso}>{iso.slice(0, 16).replace("T", " ")}</time>;
}

/**
 * Bytes as text (`12.3 KiB`).
 *
 * @param bytes A count of bytes.
 * @returns The text.
 */
export function formatBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = Math.abs(bytes);
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  const text = unit === 0 ? String(value) : value.toFixed(value < 10 ? 2 : 1);
  return `${bytes < 0 ? "-" : ""}${text} ${units[unit]}`;
}

/**
 * A count with thousands separators (`12,345`).
 *
 * @param n The count.
 * @returns The text.
 */
export function formatCount(n: number): string {
  return Math.round(n).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}
