//! The worker's JSON config. Every field has a default matching the
//! reference origin's routes, so `{}` (or no config at all) is a valid
//! config. Unknown fields are refused so that a typo is an error, not a
//! silently ignored setting.

use super::batch::BatchRoute;
use super::json::{self, FieldError, Fields, Value};
use super::pattern::Pattern;
use super::text::cat;

/// Everything the worker can be told without rebuilding the wasm.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Path prefix of the API. Before the wasm has loaded (the first moments
    /// of a cold start) the bootstrap claims same-origin requests under this
    /// prefix and lets the wasm decide once it is ready.
    pub api_prefix: String,
    /// GET routes served network-first with a cached fallback.
    pub reads: Vec<Pattern>,
    /// POST/PUT/PATCH/DELETE routes whose failures are queued and replayed.
    pub writes: Vec<Pattern>,
    /// How long a read waits for the network before the cache answers.
    pub network_timeout_ms: u32,
    /// How long a write (first attempt or replay) may take before it is
    /// abandoned as "no answer"; a hung connection must not stall its queue.
    pub write_timeout_ms: u32,
    /// Delay before retry n (1-based) is `backoff_ms[n-1]`; the last value
    /// repeats if `max_retries` is larger.
    pub backoff_ms: Vec<u32>,
    /// Retries after the first failure before an entry is dead-lettered.
    pub max_retries: u32,
    /// A pending write older than this is dead-lettered (never dropped).
    pub retention_ms: u64,
    /// Read routes answered from the cache at once and refreshed in the
    /// background (pages hear `updated` when the refresh differs). Each
    /// must also match one of `reads`.
    pub stale_while_revalidate: Vec<Pattern>,
    /// Same-origin GETs outside the API (the app's own page, script and
    /// styles) kept network-first like reads, shared by every user, so the
    /// app opens from a cold start with no network. Empty by default: a
    /// site's own caching stays in charge unless it opts in.
    pub shell: Vec<Pattern>,
    /// Bounds of the cached reads (shell included); least recently used
    /// copies go first.
    pub read_cache_max_entries: u32,
    pub read_cache_max_bytes: u64,
    /// Where the worker learns who is logged in (see `core::identity`).
    pub auth: Auth,
    /// POST with a file body: stored on the device and uploaded by the
    /// worker (`outpost.upload()` uses it).
    pub upload_path: Pattern,
    /// GET of an asset's bytes: from the device when there, else from the
    /// store through a presigned GET.
    pub content_path: Pattern,
    /// The origin's upload API (see `api.md`): `POST` here for a presigned
    /// PUT, a multipart upload, or a presigned GET.
    pub presign_path: String,
    /// `GET` lists the parts the store holds, `POST` asks URLs for parts;
    /// `{id}` is the asset id.
    pub parts_path: String,
    /// `POST` once the bytes are in the store; `{id}` is the asset id.
    pub complete_path: String,
    /// Files above this go up as S3 multipart uploads, part by part.
    pub multipart_threshold_bytes: u64,
    /// Bytes of blobs kept on the device (never more than 80 % of the
    /// browser's quota). Past 90 % of it, least recently used blobs that are
    /// safe on the server are evicted down to 70 %.
    pub blob_budget_bytes: u64,
    /// Keep a file on the device after its upload (as an evictable copy for
    /// display) instead of deleting it at once.
    pub keep_uploaded_blobs: bool,
    /// Write routes whose bodies are lists of items (`core::batch`): queued
    /// writes to one are merged on replay.
    pub batches: Vec<BatchRoute>,
    /// How long a page's write to a batch route waits for others to join it.
    pub batch_delay_ms: u32,
    /// Most items in one batch request.
    pub batch_max_items: u32,
    /// Read after a login, in order, in the background (`core::warmup`):
    /// the first route, then the others with its answer's values filled in.
    pub warm_up: Vec<String>,
    /// Most requests one warm-up makes.
    pub warm_up_max_requests: u32,
}

/// The origin's auth routes, from whose answers the worker learns the
/// current user. Cached reads and queued writes belong to that user.
#[derive(Debug, Clone, PartialEq)]
pub struct Auth {
    /// POST; a 2xx answer names the user (`{"user": {"id"}}`).
    pub login: Pattern,
    /// POST; a 2xx answer (or no answer at all) ends the user's session
    /// in this browser: their cached reads are cleared.
    pub logout: Pattern,
    /// GET; 2xx names the user (`{"id"}` or `{"user": {"id"}}`), 401 says
    /// nobody is logged in.
    pub me: Pattern,
    /// Read routes whose 2xx answers also name the user (`{"user": {"id"}}`).
    pub user_in: Vec<Pattern>,
}

impl Default for Auth {
    fn default() -> Self {
        let p = Pattern::builtin;
        Self {
            login: p("/api/auth/login"),
            logout: p("/api/auth/logout"),
            me: p("/api/auth/me"),
            user_in: vec![p("/api/sync/init")],
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        let p = Pattern::builtin;
        Self {
            api_prefix: "/api/".into(),
            reads: vec![p("/api/sync/init"), p("/api/chat/sessions*"), p("/api/projects*"), p("/api/assets*")],
            writes: vec![p("/api/chat*"), p("/api/projects*"), p("/api/inbox")],
            network_timeout_ms: 3_000,
            write_timeout_ms: 30_000,
            backoff_ms: vec![2_000, 4_000, 8_000, 16_000, 32_000],
            max_retries: 5,
            retention_ms: 7 * 24 * 3_600_000,
            stale_while_revalidate: Vec::new(),
            shell: Vec::new(),
            read_cache_max_entries: 500,
            read_cache_max_bytes: 16 * 1024 * 1024,
            auth: Auth::default(),
            upload_path: p("/api/assets/upload"),
            content_path: p("/api/assets/*/content"),
            presign_path: "/api/assets/presign".into(),
            parts_path: "/api/assets/{id}/parts".into(),
            complete_path: "/api/assets/{id}/complete".into(),
            multipart_threshold_bytes: 16 * 1024 * 1024,
            blob_budget_bytes: 512 * 1024 * 1024,
            keep_uploaded_blobs: false,
            batches: vec![BatchRoute::messages()],
            batch_delay_ms: 2_000,
            batch_max_items: 15,
            warm_up: vec![
                "/api/sync/init".into(),
                "/api/chat/sessions".into(),
                "/api/chat/sessions/{sessions.0.id}/messages".into(),
                "/api/projects".into(),
                "/api/assets/{assets[contentType=image/*].id}/content".into(),
            ],
            warm_up_max_requests: 40,
        }
    }
}

fn pattern<'a>(f: &mut Fields<'a>, field: &'a str, into: &mut Pattern) -> Result<(), FieldError> {
    if let Some(v) = f.take(field) {
        let text = v.as_str().ok_or_else(|| f.wrong(field, "a route pattern (a string)"))?;
        *into = Pattern::parse(text).map_err(|e| cat!("`", f.at(field), "`: ", e.text()))?;
    }
    Ok(())
}

fn patterns<'a>(f: &mut Fields<'a>, field: &'a str, into: &mut Vec<Pattern>) -> Result<(), FieldError> {
    if let Some(v) = f.take(field) {
        let want = "an array of route patterns (strings)";
        let items = v.as_array().ok_or_else(|| f.wrong(field, want))?;
        *into = json::map_all(items, |t| {
            let text = t.as_str().ok_or_else(|| f.wrong(field, want))?;
            Pattern::parse(text).map_err(|e| cat!("`", f.at(field), "`: ", e.text()))
        })?;
    }
    Ok(())
}

/// A config the worker cannot run with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// Not JSON, a wrong type, an unknown field or a bad route pattern.
    Parse(String),
    /// Well-formed but unusable values.
    Invalid(&'static str),
}

impl ConfigError {
    /// What is wrong, in words for the page (`Display` writes the same).
    pub fn text(&self) -> String {
        match self {
            ConfigError::Parse(m) => cat!("outpost config: ", m),
            ConfigError::Invalid(m) => cat!("outpost config: ", m),
        }
    }
}

impl core::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.text())
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Parses a config; an empty or blank string means all defaults.
    pub fn from_json(json: &str) -> Result<Self, ConfigError> {
        let json = json.trim_ascii();
        if json.is_empty() {
            return Ok(Self::default());
        }
        let value = json::parse(json.as_bytes()).map_err(|e| ConfigError::Parse(e.text()))?;
        let config = Config::read(&value).map_err(ConfigError::Parse)?;
        config.validate()?;
        Ok(config)
    }

    /// The fields are camelCase; each one absent keeps its default.
    fn read(value: &Value) -> Result<Config, FieldError> {
        let mut c = Config::default();
        let mut f = Fields::new(value, "")?;
        f.string("apiPrefix", &mut c.api_prefix)?;
        patterns(&mut f, "reads", &mut c.reads)?;
        patterns(&mut f, "writes", &mut c.writes)?;
        f.u32("networkTimeoutMs", &mut c.network_timeout_ms)?;
        f.u32("writeTimeoutMs", &mut c.write_timeout_ms)?;
        f.u32s("backoffMs", &mut c.backoff_ms)?;
        f.u32("maxRetries", &mut c.max_retries)?;
        f.u64("retentionMs", &mut c.retention_ms)?;
        patterns(&mut f, "staleWhileRevalidate", &mut c.stale_while_revalidate)?;
        patterns(&mut f, "shell", &mut c.shell)?;
        f.u32("readCacheMaxEntries", &mut c.read_cache_max_entries)?;
        f.u64("readCacheMaxBytes", &mut c.read_cache_max_bytes)?;
        if let Some(auth) = f.take("auth") {
            let mut a = Fields::new(auth, "auth")?;
            pattern(&mut a, "login", &mut c.auth.login)?;
            pattern(&mut a, "logout", &mut c.auth.logout)?;
            pattern(&mut a, "me", &mut c.auth.me)?;
            patterns(&mut a, "userIn", &mut c.auth.user_in)?;
            a.finish()?;
        }
        pattern(&mut f, "uploadPath", &mut c.upload_path)?;
        pattern(&mut f, "contentPath", &mut c.content_path)?;
        f.string("presignPath", &mut c.presign_path)?;
        f.string("partsPath", &mut c.parts_path)?;
        f.string("completePath", &mut c.complete_path)?;
        f.u64("multipartThresholdBytes", &mut c.multipart_threshold_bytes)?;
        f.u64("blobBudgetBytes", &mut c.blob_budget_bytes)?;
        f.bool("keepUploadedBlobs", &mut c.keep_uploaded_blobs)?;
        if let Some(batches) = f.take("batches") {
            let items = batches.as_array().ok_or_else(|| f.wrong("batches", "an array"))?;
            c.batches = json::map_all(items, BatchRoute::read)?;
        }
        f.u32("batchDelayMs", &mut c.batch_delay_ms)?;
        f.u32("batchMaxItems", &mut c.batch_max_items)?;
        f.strings("warmUp", &mut c.warm_up)?;
        f.u32("warmUpMaxRequests", &mut c.warm_up_max_requests)?;
        f.finish()?;
        Ok(c)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if !(self.api_prefix.starts_with("/") && self.api_prefix.ends_with("/")) {
            return Err(ConfigError::Invalid("apiPrefix must start and end with '/'"));
        }
        if self.backoff_ms.is_empty() {
            return Err(ConfigError::Invalid("backoffMs needs at least one delay"));
        }
        if self.network_timeout_ms == 0 || self.write_timeout_ms == 0 {
            return Err(ConfigError::Invalid("networkTimeoutMs and writeTimeoutMs must be above 0"));
        }
        if ![&self.presign_path, &self.parts_path, &self.complete_path].iter().all(|p| p.starts_with("/")) {
            return Err(ConfigError::Invalid("presignPath, partsPath and completePath must start with '/'"));
        }
        if !(super::text::contains(&self.parts_path, "{id}") && super::text::contains(&self.complete_path, "{id}")) {
            return Err(ConfigError::Invalid("partsPath and completePath must hold {id}, where the asset id goes"));
        }
        if !self.warm_up.iter().all(|p| p.starts_with("/")) {
            return Err(ConfigError::Invalid("warmUp routes must start with '/'"));
        }
        if self.batch_max_items == 0 {
            return Err(ConfigError::Invalid("batchMaxItems must be above 0"));
        }
        if self.read_cache_max_entries == 0 || self.read_cache_max_bytes == 0 {
            return Err(ConfigError::Invalid("readCacheMaxEntries and readCacheMaxBytes must be above 0"));
        }
        Ok(())
    }

    /// The path of the worker's own version route.
    pub fn version_path(&self) -> String {
        cat!(self.api_prefix, "__outpost/version")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_patterns() {
        let c = Config::default();
        let mut all: Vec<&Pattern> = vec![&c.upload_path, &c.content_path, &c.auth.login, &c.auth.logout, &c.auth.me];
        for list in [&c.reads, &c.writes, &c.stale_while_revalidate, &c.shell, &c.auth.user_in] {
            all.extend(list.iter());
        }
        all.extend(c.batches.iter().map(|b| &b.path));
        for p in all {
            assert_eq!(Pattern::parse(p.as_str()).as_ref(), Ok(p), "{}", p.as_str());
        }
    }

    #[test]
    fn empty_means_defaults() {
        assert_eq!(Config::from_json(""), Ok(Config::default()));
        assert_eq!(Config::from_json("{}"), Ok(Config::default()));
    }

    #[test]
    fn defaults_match_the_contract() {
        let c = Config::default();
        assert_eq!(c.backoff_ms, [2_000, 4_000, 8_000, 16_000, 32_000]);
        assert_eq!(c.max_retries, 5);
        assert_eq!(c.network_timeout_ms, 3_000);
        assert_eq!(c.version_path(), "/api/__outpost/version");
        assert_eq!(c.auth.me.as_str(), "/api/auth/me");
        assert!(c.shell.is_empty() && c.stale_while_revalidate.is_empty());
    }

    /// The sample config shipped by `outpost export` spells out the defaults.
    #[test]
    fn the_shipped_sample_is_the_defaults() {
        let sample = include_str!("../../../shim/outpost.config.json");
        assert_eq!(Config::from_json(sample), Ok(Config::default()));
    }

    #[test]
    fn auth_routes_can_be_renamed_one_by_one() {
        let c = Config::from_json(r#"{"auth": {"me": "/api/whoami"}}"#).unwrap();
        assert_eq!(c.auth.me.as_str(), "/api/whoami");
        assert_eq!(c.auth.login.as_str(), "/api/auth/login");
        assert!(Config::from_json(r#"{"auth": {"who": "/x"}}"#).is_err());
        assert_eq!(
            Config::from_json(r#"{"readCacheMaxBytes": 0}"#),
            Err(ConfigError::Invalid("readCacheMaxEntries and readCacheMaxBytes must be above 0"))
        );
    }

    #[test]
    fn fields_override_defaults() {
        let c = Config::from_json(r#"{"networkTimeoutMs": 500, "writes": ["/v1/notes*"]}"#).unwrap();
        assert_eq!(c.network_timeout_ms, 500);
        assert_eq!(c.writes.len(), 1);
        assert_eq!(c.writes[0].as_str(), "/v1/notes*");
        assert_eq!(c.reads, Config::default().reads);
    }

    #[test]
    fn typos_and_bad_values_are_errors() {
        let e = Config::from_json(r#"{"networkTimeoutMS": 5}"#).unwrap_err();
        assert!(matches!(&e, ConfigError::Parse(m) if m.contains("networkTimeoutMS")), "{e}");
        let e = Config::from_json(r#"{"reads": ["api/x"]}"#).unwrap_err();
        assert!(matches!(&e, ConfigError::Parse(m) if m.contains("must start with '/'")), "{e}");
        assert_eq!(
            Config::from_json(r#"{"backoffMs": []}"#),
            Err(ConfigError::Invalid("backoffMs needs at least one delay"))
        );
        assert!(matches!(Config::from_json("{"), Err(ConfigError::Parse(_))));
        assert!(
            matches!(Config::from_json(r#"{"partsPath": "/api/parts"}"#), Err(ConfigError::Invalid(m)) if m.contains("{id}"))
        );
        assert!(matches!(Config::from_json("[]"), Err(ConfigError::Parse(_))));
    }
}
