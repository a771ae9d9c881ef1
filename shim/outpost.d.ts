/** Outpost page client. */

/** The worker's JSON config; every field is optional (defaults in the README). */
export interface OutpostConfig {
  apiPrefix?: string;
  reads?: string[];
  writes?: string[];
  networkTimeoutMs?: number;
  writeTimeoutMs?: number;
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

export interface DeadLetter {
  id: string;
  method?: string;
  url?: string;
  /** The origin's last answer, if any. */
  status?: number | null;
  /** What went wrong, in words. */
  reason: string;
  at?: number;
}

export interface Status {
  /** Writes waiting to be delivered. */
  pending: number;
  deadLetters: DeadLetter[];
  uploads: unknown[];
}

export type OutpostEventName =
  | 'queued' | 'replayed' | 'retry-scheduled' | 'dead-lettered'
  | 'upload-progress' | 'uploaded' | 'evicted' | 'quota-low';

export interface OutpostEvent {
  type: OutpostEventName;
  id?: string;
  method?: string;
  url?: string;
  status?: number;
  /** Unix ms of the next attempt (`retry-scheduled`). */
  retryAt?: number;
  retries?: number;
  reason?: string;
}

/** The answer a page gets for a write the worker queued. */
export interface QueuedResponseBody {
  queued: true;
  id: string;
  idempotencyKey: string;
}

export declare class Outpost {
  readonly registration: ServiceWorkerRegistration;
  /** Registers the worker and resolves once it controls this page. */
  static register(options?: RegisterOptions): Promise<Outpost>;
  /** The bundle hash of the worker controlling this page. */
  version(): Promise<string>;
  status(): Promise<Status>;
  /** Replays queued writes now; resolves with the status afterwards. */
  flush(): Promise<Status>;
  retry(id: string): Promise<boolean>;
  discard(id: string): Promise<boolean>;
  on(event: OutpostEventName, fn: (event: OutpostEvent) => void): () => void;
}
