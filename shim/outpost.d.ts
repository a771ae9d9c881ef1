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
  /** Read routes answered from the cache at once and refreshed behind (`updated` event). */
  staleWhileRevalidate?: string[];
  /** Same-origin non-API GETs (the app's page, scripts, styles) kept for offline starts. */
  shell?: string[];
  readCacheMaxEntries?: number;
  readCacheMaxBytes?: number;
  /** The origin's auth routes, from whose answers the worker learns the current user. */
  auth?: { login?: string; logout?: string; me?: string; userIn?: string[] };
  uploadPath?: string;
  contentPath?: string;
  /** The origin's upload API: presign (PUT, multipart, GET), parts (`{id}`: the asset id), complete. */
  presignPath?: string;
  partsPath?: string;
  completePath?: string;
  multipartThresholdBytes?: number;
  blobBudgetBytes?: number;
  keepUploadedBlobs?: boolean;
  /** Write routes whose JSON body is one array of items (`{messages: [...]}`): queued writes to one are merged on replay. */
  batches?: { path: string; items: string }[];
  batchDelayMs?: number;
  /** Most items in one batch request. */
  batchMaxItems?: number;
  /** Read after a login, in order, in the background: the first route, then the others with `{…}` filled in from
   * its answer (`{sessions.0.id}`, `{assets.*.id}`, `{assets[contentType=image/*].id}`). `[]`: no warm-up. */
  warmUp?: string[];
  warmUpMaxRequests?: number;
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

export interface Upload {
  /** The temp id the page got (`local-…`). */
  assetId: string;
  /** The origin's id, once presigned. */
  serverId: string | null;
  filename: string;
  size: number;
  /** Bytes known to be in the store. */
  done: number;
  state: 'pending' | 'dead';
  reason: string | null;
  retryAt: number | null;
}

export interface Status {
  /** The logged-in user's id as the worker knows it (null: nobody). */
  user: string | null;
  /** This user's writes waiting to be delivered. */
  pending: number;
  /** Other users' writes, waiting for them to log in again. */
  parked: number;
  /** This user's first 50 waiting writes, oldest first. */
  queue: {
    id: string; method: string; url: string; retries: number; nextAt: number; createdAt: number;
    /** The origin's last answer; null when the last attempt got no answer (waiting for the network) or none was made. */
    status: number | null;
  }[];
  /** This user's dead letters (and unreadable records). */
  deadLetters: DeadLetter[];
  uploads: Upload[];
  /** `usage`/`quota` from `navigator.storage.estimate()`; `blobs`: bytes of files kept; `budget`: their budget. */
  storage: { usage: number | null; quota: number | null; budget: number; blobs: number };
  /** When the worker next wakes for a due write or upload (Unix ms; null: nothing pending). Open pages wake a
   * worker the browser stopped at this time. */
  nextWakeAt: number | null;
  /** When the worker instance that answered started (Unix ms): browsers stop idle workers and start new ones. */
  workerStartedAt: number;
  /** Bytes the answering worker instance's wasm heap holds: steady while it runs (a number that keeps growing is a leak to report). */
  workerHeapBytes: number;
  /** Set when the worker could not open IndexedDB: it keeps nothing, and writes and reads go to the network. */
  storageError?: string;
}

export type OutpostEventName =
  | 'queued' | 'replayed' | 'retry-scheduled' | 'dead-lettered' | 'updated'
  | 'upload-progress' | 'uploaded' | 'evicted' | 'quota-low' | 'warm-up';

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
  /** Upload events: the temp asset id, the origin's id, bytes done / total. */
  assetId?: string;
  serverId?: string;
  done?: number;
  total?: number;
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
  /** Keeps a file on the device and uploads it; resolves once it is stored locally. */
  upload(file: Blob, meta?: { filename?: string; contentType?: string; projectId?: string }): Promise<{
    assetId: string;
    done: Promise<{ assetId: string; serverId: string; size: number }>;
  }>;
  /** Logs out through the worker, which forgets this user's cached reads here. */
  logout(): Promise<{ ok: boolean; status: number }>;
  on(event: OutpostEventName, fn: (event: OutpostEvent) => void): () => void;
}
