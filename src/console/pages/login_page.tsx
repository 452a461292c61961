/**
 * `/console/login`: the sign-in form (one field, `api_key`, posted to the same URL).
 *
 * @module
 */

import type { Child } from "hono/jsx";
import { type Flash, Layout } from "../layout.tsx";

/** Props of {@linkcode LoginPage}. */
export interface LoginPageProps {
  /** Why the last attempt failed, or that the tenant signed out. */
  flash?: Flash;
  /** Asset version. */
  assetVersion: string;
  /** Where to go after signing in (a `/console/…` path). */
  next?: string;
  /** The server has no API keys: any key signs in as the one tenant `default`. */
  open?: boolean;
}

/**
 * The sign-in page.
 *
 * @param props Message and asset version.
 * @returns The page.
 */
export function LoginPage(props: LoginPageProps): Child {
  return (
    <Layout title="Sign in" flash={props.flash} assetVersion={props.assetVersion}>
      <form class="card narrow" method="post" action="/console/login">
        <p>Sign in with your tenant's API key. It stays on the server; this browser only holds a session.</p>
        {props.open && (
          <p class="muted" id="open-server">
            This server has no API keys: any key signs in as the one tenant, <code>default</code>.
          </p>
        )}
        <label for="api_key">API key</label>
        <input
          id="api_key"
          name="api_key"
          type="password"
          autocomplete="current-password"
          required
          autofocus
          spellcheck={false}
        />
        {props.next && <input type="hidden" name="next" value={props.next} />}
        <button type="submit">Sign in</button>
      </form>
    </Layout>
  );
}
