/**
 * A console page that says what is not there (an unknown path, another tenant's job, fine-tuning disabled).
 *
 * @module
 */

import type { Child } from "hono/jsx";
import { Layout } from "../layout.tsx";

/** Props of {@linkcode NotFoundPage}. */
export interface NotFoundPageProps {
  /** The tenant and CSRF token. */
  session: { tenant: string; csrf: string };
  /** The heading. */
  title: string;
  /** What is missing. */
  text: string;
  /** Asset version. */
  assetVersion: string;
}

/**
 * The page.
 *
 * @param props Title and text.
 * @returns The page.
 */
export function NotFoundPage(props: NotFoundPageProps): Child {
  return (
    <Layout title={props.title} session={props.session} assetVersion={props.assetVersion}>
      <p id="not-found">{props.text}</p>
      <p>
        <a href="/console/adapters">Back to the adapters</a>
      </p>
    </Layout>
  );
}
