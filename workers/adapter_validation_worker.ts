/**
 * An adapter validation worker, driven by `src/serve/adapter_validator.ts`: it reads an uploaded
 * adapter's staged weights file and checks it against the base model off the server's request thread.
 *
 * @module
 */

/// <reference lib="deno.worker" />

import "../src/serve/_validate_adapter_main.ts";
