/** Outpost page client. */

/** The worker's JSON config; every field is optional (defaults in the README). */
export interface OutpostConfig {
  apiPrefix?: string;
  reads?: string[];
  writes?: string[];
  networkTimeoutMs?: number;
  backoffMs?: number[];
  maxRetries?: number;
  retentionMs?: number;
}

export interface RegisterOptions {
  config?: OutpostConfig;
  /** URL of the worker script. Default `/sw.js`. */
  script?: string;
  /** Registration scope. Default `/`. */
  scope?: string;
}

export declare class Outpost {
  readonly registration: ServiceWorkerRegistration;
  /** Registers the worker and resolves once it controls this page. */
  static register(options?: RegisterOptions): Promise<Outpost>;
  /** The bundle hash of the worker controlling this page. */
  version(): Promise<string>;
}
