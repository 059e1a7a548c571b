//! CloudFront's distribution config, as `aws cloudfront get-distribution-config`
//! prints it, turned into an Edge config, naming every field it cannot carry.
//!
//! The import walks CloudFront's JSON object by object: each known field is
//! either carried (origins, origin groups, aliases, behaviors with their TTLs,
//! legacy `ForwardedValues` or a managed cache policy, a managed or given
//! origin request policy, comment, enabled) or
//! reported with the reason and what to do instead (Lambda@Edge ARNs, WAF,
//! certificates, signed URLs...). A field the importer does not know is
//! reported too, unless it is empty (`""`, `false`, `{"Quantity": 0}`,
//! `{"Enabled": false}`), so nothing set in CloudFront is dropped silently.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value, json};

use http::header::HeaderName;

use super::raw::{
    CacheBehaviorConfig, CacheKeyConfig, DistributionConfig, HooksConfig, LoggingConfig, Names,
    OriginConfig, OriginGroupConfig, OriginRequestConfig, Protocol, QueryStrings,
};

/// A CloudFront setting the import could not carry, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NotCarried {
    /// Where it was, e.g. `DefaultCacheBehavior.LambdaFunctionAssociations[0]`.
    pub field: String,
    /// Why, and what to use instead.
    pub reason: String,
}

/// The Edge config and what was left behind.
#[derive(Debug, Clone)]
pub struct Imported {
    pub config: DistributionConfig,
    pub not_carried: Vec<NotCarried>,
}

/// A document the importer cannot read as a CloudFront distribution config.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ImportError {
    pub field: String,
    pub message: String,
}

/// CloudFront's managed cache policies: id, name, (min, default, max) TTLs,
/// and whether all query strings are in the key.
const MANAGED_POLICIES: &[(&str, &str, [u64; 3], bool)] = &[
    (
        "658327ea-f89d-4fab-a63d-7e88639e58f6",
        "CachingOptimized",
        [1, 86_400, 31_536_000],
        false,
    ),
    (
        "b2884449-e4de-46a7-ac36-70bc7f1ddd6d",
        "CachingOptimizedForUncompressedObjects",
        [1, 86_400, 31_536_000],
        false,
    ),
    (
        "4135ea2d-6df8-44a3-9df3-4b5a84be39ad",
        "CachingDisabled",
        [0, 0, 0],
        false,
    ),
    (
        "83da9c7e-98b4-4e11-a168-04f0df8e2c65",
        "UseOriginCacheControlHeaders",
        [0, 0, 31_536_000],
        false,
    ),
    (
        "4cc15a8a-d715-48a4-82b8-cc0b614638fe",
        "UseOriginCacheControlHeaders-QueryStrings",
        [0, 0, 31_536_000],
        true,
    ),
];

/// CloudFront's managed origin request policies: id and name (their
/// contents are [`managed_origin_request_policy`]).
const MANAGED_ORIGIN_REQUEST_POLICIES: &[(&str, &str)] = &[
    ("216adef6-5c7f-47e4-b989-5492eafa07d3", "AllViewer"),
    (
        "b689b0a8-53d0-40ab-baf2-68738e2966ac",
        "AllViewerExceptHostHeader",
    ),
    (
        "33f36d7e-f396-46d9-90e0-52428a34d9dc",
        "AllViewerAndCloudFrontHeaders-2022-06",
    ),
    (
        "acba4595-bd28-49b8-b9fe-13317c0390fa",
        "UserAgentRefererHeaders",
    ),
    ("88a5eaf4-2fd4-4709-b370-b4c650ea3fcf", "CORS-S3Origin"),
    ("59781a5b-3903-41f3-afcb-af62929ccde1", "CORS-CustomOrigin"),
    (
        "775133bc-15f2-49f9-abea-afb2e0bf67d2",
        "Elemental-MediaTailor-PersonalizedManifests",
    ),
];

/// The CloudFront headers `AllViewerAndCloudFrontHeaders-2022-06` adds.
const CLOUDFRONT_HEADERS: &[&str] = &[
    "CloudFront-Forwarded-Proto",
    "CloudFront-Is-Android-Viewer",
    "CloudFront-Is-Desktop-Viewer",
    "CloudFront-Is-IOS-Viewer",
    "CloudFront-Is-Mobile-Viewer",
    "CloudFront-Is-SmartTV-Viewer",
    "CloudFront-Is-Tablet-Viewer",
    "CloudFront-Viewer-Address",
    "CloudFront-Viewer-ASN",
    "CloudFront-Viewer-City",
    "CloudFront-Viewer-Country",
    "CloudFront-Viewer-Country-Name",
    "CloudFront-Viewer-Country-Region",
    "CloudFront-Viewer-Country-Region-Name",
    "CloudFront-Viewer-Header-Count",
    "CloudFront-Viewer-Header-Order",
    "CloudFront-Viewer-Http-Version",
    "CloudFront-Viewer-JA3-Fingerprint",
    "CloudFront-Viewer-JA4-Fingerprint",
    "CloudFront-Viewer-Latitude",
    "CloudFront-Viewer-Longitude",
    "CloudFront-Viewer-Metro-Code",
    "CloudFront-Viewer-Postal-Code",
    "CloudFront-Viewer-Time-Zone",
    "CloudFront-Viewer-TLS",
];

/// A managed origin request policy's `OriginRequestPolicyConfig`, as
/// `aws cloudfront get-origin-request-policy` prints it.
fn managed_origin_request_policy(name: &str) -> Value {
    let list = |items: &[&str]| json!({"Quantity": items.len(), "Items": items});
    let whitelist = |items: &[&str]| json!({"HeaderBehavior": "whitelist", "Headers": list(items)});
    let cors = [
        "origin",
        "access-control-request-method",
        "access-control-request-headers",
    ];
    let (headers, all_cookies, all_queries) = match name {
        "AllViewer" => (json!({"HeaderBehavior": "allViewer"}), true, true),
        "AllViewerExceptHostHeader" => (
            json!({"HeaderBehavior": "allExcept", "Headers": list(&["host"])}),
            true,
            true,
        ),
        "AllViewerAndCloudFrontHeaders-2022-06" => (
            json!({"HeaderBehavior": "allViewerAndWhitelistCloudFront", "Headers": list(CLOUDFRONT_HEADERS)}),
            true,
            true,
        ),
        "UserAgentRefererHeaders" => (whitelist(&["user-agent", "referer"]), false, false),
        "CORS-S3Origin" => (whitelist(&cors), false, false),
        "CORS-CustomOrigin" => (whitelist(&["origin"]), false, false),
        _ => (
            whitelist(&[
                "origin",
                "access-control-request-headers",
                "x-forwarded-for",
                "access-control-request-method",
                "user-agent",
            ]),
            false,
            true,
        ),
    };
    let behavior = |all: bool| if all { "all" } else { "none" };
    json!({
        "Name": name,
        "HeadersConfig": headers,
        "CookiesConfig": {"CookieBehavior": behavior(all_cookies)},
        "QueryStringsConfig": {"QueryStringBehavior": behavior(all_queries)},
    })
}

/// Reads CloudFront's JSON: the whole `get-distribution-config` answer
/// (`{"ETag", "DistributionConfig"}`) or the `DistributionConfig` alone.
pub fn import(document: &Value) -> Result<Imported, ImportError> {
    import_with(document, &[])
}

/// A custom origin request policy, for the behaviors that name its id.
#[derive(Debug, Clone)]
pub struct OriginRequestPolicy {
    pub id: String,
    /// Its `OriginRequestPolicyConfig`.
    pub config: Value,
}

impl OriginRequestPolicy {
    /// Reads what `aws cloudfront get-origin-request-policy --id ...` prints
    /// (`{"ETag", "OriginRequestPolicy": {"Id", "OriginRequestPolicyConfig"}}`),
    /// or its `OriginRequestPolicy` alone.
    pub fn read(document: &Value) -> Result<Self, ImportError> {
        let policy = document.get("OriginRequestPolicy").unwrap_or(document);
        let mut f = Fields::new("OriginRequestPolicy", policy)?;
        let id = f.required_string("Id")?;
        let config = f
            .take("OriginRequestPolicyConfig")
            .filter(Value::is_object)
            .ok_or_else(|| invalid(&f.at("OriginRequestPolicyConfig"), "missing"))?;
        Ok(Self { id, config })
    }
}

/// [`import`], with the custom origin request policies the behaviors name.
pub fn import_with(
    document: &Value,
    policies: &[OriginRequestPolicy],
) -> Result<Imported, ImportError> {
    let config = match document.get("DistributionConfig") {
        Some(inner) => inner,
        None => document,
    };
    let mut importer = Importer::default();
    for policy in policies {
        importer
            .origin_request_policies
            .insert(policy.id.clone(), policy.config.clone());
    }
    let config = importer.distribution(config)?;
    Ok(Imported {
        config,
        not_carried: importer.not_carried,
    })
}

#[derive(Debug, Default)]
struct Importer {
    not_carried: Vec<NotCarried>,
    /// Custom origin request policies by id: their `OriginRequestPolicyConfig`.
    origin_request_policies: BTreeMap<String, Value>,
}

/// What the host does with the viewer's headers that CloudFront's "all
/// viewer headers" would have forwarded.
const ALL_HEADERS_EXCEPT: &str = "on GET and HEAD the URL- and method-override headers (X-Forwarded-Host, X-Original-URL, X-HTTP-Method-Override and the like) are dropped unless cache_key.headers names them, and the host sets X-Forwarded-For (the client appended), X-Forwarded-Proto and Forwarded itself (forwarding_headers) and drops the viewer's other forwarding headers (X-Real-IP, True-Client-IP, X-Forwarded-Proto and the like)";

/// One JSON object being read: fields are taken as they are carried, and
/// whatever is left at the end is reported.
struct Fields {
    path: String,
    map: Map<String, Value>,
}

impl Fields {
    fn new(path: &str, value: &Value) -> Result<Self, ImportError> {
        match value {
            Value::Object(map) => Ok(Self {
                path: path.to_owned(),
                map: map.clone(),
            }),
            _ => Err(invalid(path, "expected an object")),
        }
    }

    fn at(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    fn take(&mut self, key: &str) -> Option<Value> {
        self.map.remove(key).filter(|v| !v.is_null())
    }

    fn string(&mut self, key: &str) -> Result<Option<String>, ImportError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(invalid(&self.at(key), "expected a string")),
        }
    }

    fn required_string(&mut self, key: &str) -> Result<String, ImportError> {
        self.string(key)?
            .ok_or_else(|| invalid(&self.at(key), "missing"))
    }

    fn number(&mut self, key: &str) -> Result<Option<u64>, ImportError> {
        match self.take(key) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .map(Some)
                .ok_or_else(|| invalid(&self.at(key), "expected a whole number")),
        }
    }

    fn boolean(&mut self, key: &str) -> Result<Option<bool>, ImportError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(b)),
            Some(_) => Err(invalid(&self.at(key), "expected true or false")),
        }
    }

    /// CloudFront's `{"Quantity": n, "Items": [...]}` list, empty when absent.
    fn items(&mut self, key: &str) -> Result<Vec<Value>, ImportError> {
        let path = self.at(key);
        match self.take(key) {
            None => Ok(Vec::new()),
            Some(Value::Object(mut list)) => match list.remove("Items") {
                None | Some(Value::Null) => Ok(Vec::new()),
                Some(Value::Array(items)) => Ok(items),
                Some(_) => Err(invalid(&format!("{path}.Items"), "expected a list")),
            },
            Some(Value::Array(items)) => Ok(items),
            Some(_) => Err(invalid(&path, "expected {\"Quantity\", \"Items\"}")),
        }
    }

    /// Strings of a CloudFront list.
    fn strings(&mut self, key: &str) -> Result<Vec<String>, ImportError> {
        let path = self.at(key);
        self.items(key)?
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                _ => Err(invalid(&path, "expected a list of strings")),
            })
            .collect()
    }
}

fn invalid(field: &str, message: &str) -> ImportError {
    ImportError {
        field: field.to_owned(),
        message: message.to_owned(),
    }
}

/// Whether a CloudFront value sets nothing: empty, off, or a zero-length list.
fn is_unset(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::String(s) => s.is_empty(),
        Value::Number(n) => n.as_u64() == Some(0),
        Value::Array(items) => items.is_empty(),
        Value::Object(map) => {
            map.get("Quantity").and_then(Value::as_u64) == Some(0)
                || map.get("Enabled") == Some(&Value::Bool(false))
                || map.values().all(is_unset)
        }
    }
}

/// The hook event a Lambda@Edge or CloudFront Functions event type maps to.
fn hook_event(event_type: &str) -> &str {
    match event_type {
        "viewer-request" => "viewer_request",
        "origin-request" => "origin_request",
        "origin-response" => "origin_response",
        "viewer-response" => "viewer_response",
        other => other,
    }
}

impl Importer {
    fn skip(&mut self, field: String, reason: impl Into<String>) {
        self.not_carried.push(NotCarried {
            field,
            reason: reason.into(),
        });
    }

    /// Takes `key` and reports it with `reason` when it sets anything.
    fn skip_if_set(&mut self, fields: &mut Fields, key: &str, reason: &str) {
        if let Some(value) = fields.take(key)
            && !is_unset(&value)
        {
            self.skip(fields.at(key), reason);
        }
    }

    /// Reports what is left of an object.
    fn finish(&mut self, fields: Fields) {
        for (key, value) in &fields.map {
            if !is_unset(value) {
                self.skip(
                    fields.at(key),
                    format!("not known to the importer ({value}); nothing was carried"),
                );
            }
        }
    }

    fn distribution(&mut self, value: &Value) -> Result<DistributionConfig, ImportError> {
        let mut f = Fields::new("", value)?;
        // CloudFront's idempotency token for its own API; Edge has ids of its own.
        f.take("CallerReference");
        let comment = f.string("Comment")?.unwrap_or_default();
        let enabled = f.boolean("Enabled")?.unwrap_or(true);
        let aliases = f.strings("Aliases")?;
        let origins = f
            .items("Origins")?
            .iter()
            .enumerate()
            .map(|(i, o)| self.origin(&format!("Origins[{i}]"), o))
            .collect::<Result<Vec<_>, _>>()?;
        if origins.is_empty() {
            return Err(invalid(
                "Origins",
                "a distribution needs at least one origin",
            ));
        }
        let origin_groups = f
            .items("OriginGroups")?
            .iter()
            .enumerate()
            .map(|(i, g)| self.origin_group(&format!("OriginGroups[{i}]"), g))
            .collect::<Result<Vec<_>, _>>()?;
        let default = f
            .take("DefaultCacheBehavior")
            .ok_or_else(|| invalid("DefaultCacheBehavior", "missing"))?;
        let default_cache_behavior = self.behavior("DefaultCacheBehavior", &default, false)?;
        let cache_behaviors = f
            .items("CacheBehaviors")?
            .iter()
            .enumerate()
            .map(|(i, b)| self.behavior(&format!("CacheBehaviors[{i}]"), b, true))
            .collect::<Result<Vec<_>, _>>()?;

        if let Some(root) = f.string("DefaultRootObject")?.filter(|r| !r.is_empty()) {
            self.skip(
                f.at("DefaultRootObject"),
                format!("{root:?} is not served for `/`; rewrite `/` in a viewer-request hook or serve it from the origin"),
            );
        }
        self.skip_if_set(&mut f, "CustomErrorResponses", "custom error pages are not carried; an origin-response or viewer-response hook can replace error bodies");
        let mut logging = LoggingConfig::default();
        if let Some(log) = f.take("Logging") {
            let mut l = Fields::new("Logging", &log)?;
            logging.enabled = l.boolean("Enabled")?.unwrap_or(false);
            logging.include_cookies = logging.enabled && l.boolean("IncludeCookies")? == Some(true);
            if logging.enabled
                && let Some(bucket) = l.string("Bucket")?.filter(|b| !b.is_empty())
            {
                self.skip(
                    l.at("Bucket"),
                    format!("{bucket}: logs go to the host's --access-log (JSON lines), not to S3"),
                );
            }
        }
        self.skip_if_set(&mut f, "WebACLId", "AWS WAF is not carried; refuse requests in a viewer-request hook or in front of the hosts");
        self.skip_if_set(&mut f, "ContinuousDeploymentPolicyId", "recreate the policy with `edge cd policy create` and attach it to the imported distribution");
        self.skip_if_set(
            &mut f,
            "Staging",
            "imported as a primary distribution; make a staging copy with `edge cd create-staging`",
        );
        if let Some(price) = f.string("PriceClass")? {
            self.skip(
                f.at("PriceClass"),
                format!("{price}: where the hosts run is yours to choose"),
            );
        }
        if let Some(version) = f.string("HttpVersion")?
            && version.contains('3')
        {
            self.skip(
                f.at("HttpVersion"),
                format!("{version}: the host serves HTTP/1.1 and HTTP/2, not HTTP/3"),
            );
        }
        if f.boolean("IsIPV6Enabled")? == Some(true) {
            self.skip(
                f.at("IsIPV6Enabled"),
                "listen on an IPv6 address (`edge serve --listen [::]:80`)",
            );
        }
        if let Some(mut cert) = f
            .take("ViewerCertificate")
            .map(|c| Fields::new("ViewerCertificate", &c))
            .transpose()?
            && cert.boolean("CloudFrontDefaultCertificate")? != Some(true)
        {
            let name = cert
                .string("ACMCertificateArn")?
                .or(cert.string("IAMCertificateId")?)
                .unwrap_or_else(|| "a custom certificate".to_owned());
            self.skip(
                "ViewerCertificate".to_owned(),
                format!("{name}: upload the certificate chain and key with `PUT /v1/certificates/{{name}}`; AWS certificates cannot be used by reference"),
            );
        }
        if let Some(restrictions) = f.take("Restrictions") {
            let kind = restrictions
                .pointer("/GeoRestriction/RestrictionType")
                .and_then(Value::as_str)
                .unwrap_or("none");
            if kind != "none" {
                self.skip(
                    "Restrictions".to_owned(),
                    format!("a geographic {kind} is not carried; refuse by a country header from your load balancer in a viewer-request hook"),
                );
            }
        }
        self.finish(f);
        Ok(DistributionConfig {
            comment,
            enabled,
            aliases,
            origins,
            origin_groups,
            backends: Vec::new(),
            dynamic_origins: None,
            default_cache_behavior,
            cache_behaviors,
            continuous_deployment_policy_id: None,
            logging,
            cluster: false,
        })
    }

    fn origin(&mut self, path: &str, value: &Value) -> Result<OriginConfig, ImportError> {
        let mut f = Fields::new(path, value)?;
        let id = f.required_string("Id")?;
        let host = f.required_string("DomainName")?;
        let origin_path = f.string("OriginPath")?.unwrap_or_default();
        let mut custom_headers = BTreeMap::new();
        for (i, header) in f.items("CustomHeaders")?.iter().enumerate() {
            let mut h = Fields::new(&format!("{path}.CustomHeaders[{i}]"), header)?;
            custom_headers.insert(
                h.required_string("HeaderName")?,
                h.required_string("HeaderValue")?,
            );
            self.finish(h);
        }
        let connect_timeout_ms = f.number("ConnectionTimeout")?.map(|s| s * 1000);
        if let Some(attempts) = f.number("ConnectionAttempts")?
            && attempts > 1
        {
            self.skip(
                f.at("ConnectionAttempts"),
                format!(
                    "{attempts}: the host tries an origin once; list a fallback in an origin group"
                ),
            );
        }
        self.skip_if_set(
            &mut f,
            "OriginShield",
            "no origin shield tier; a second Edge host in front of the origin plays that part",
        );
        self.skip_if_set(
            &mut f,
            "OriginAccessControlId",
            "private S3 access (OAC) is not carried; the bucket must be readable by the host",
        );
        let (mut protocol, mut domain_name) = (Protocol::Https, host.clone());
        let (mut read_timeout_ms, mut keepalive_timeout_ms) = (None, None);
        if let Some(custom) = f.take("CustomOriginConfig") {
            let mut c = Fields::new(&f.at("CustomOriginConfig"), &custom)?;
            let http_port = c.number("HTTPPort")?.unwrap_or(80);
            let https_port = c.number("HTTPSPort")?.unwrap_or(443);
            let policy = c
                .string("OriginProtocolPolicy")?
                .unwrap_or_else(|| "https-only".to_owned());
            let port = if policy == "http-only" {
                protocol = Protocol::Http;
                (http_port != 80).then_some(http_port)
            } else {
                if policy == "match-viewer" {
                    self.skip(
                        c.at("OriginProtocolPolicy"),
                        "match-viewer: the host fetches over HTTPS whatever the viewer used",
                    );
                }
                (https_port != 443).then_some(https_port)
            };
            if let Some(port) = port {
                domain_name = format!("{host}:{port}");
            }
            read_timeout_ms = c.number("OriginReadTimeout")?.map(|s| s * 1000);
            keepalive_timeout_ms = c.number("OriginKeepaliveTimeout")?.map(|s| s * 1000);
            // The host speaks TLS 1.2 and 1.3 to origins, whatever was listed.
            c.take("OriginSslProtocols");
            self.finish(c);
        }
        if let Some(s3) = f.take("S3OriginConfig") {
            let mut s = Fields::new(&f.at("S3OriginConfig"), &s3)?;
            self.skip_if_set(
                &mut s,
                "OriginAccessIdentity",
                "private S3 access (OAI) is not carried; the bucket must be readable by the host",
            );
            self.finish(s);
        }
        self.finish(f);
        Ok(OriginConfig {
            id,
            domain_name,
            protocol,
            origin_path,
            custom_headers,
            connect_timeout_ms,
            read_timeout_ms,
            keepalive_timeout_ms,
            protocol_version: super::raw::ProtocolVersion::H1,
            addresses: Vec::new(),
            health_check: None,
        })
    }

    fn origin_group(
        &mut self,
        path: &str,
        value: &Value,
    ) -> Result<OriginGroupConfig, ImportError> {
        let mut f = Fields::new(path, value)?;
        let id = f.required_string("Id")?;
        let members = f
            .items("Members")?
            .iter()
            .map(|m| {
                m.get("OriginId")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .ok_or_else(|| {
                        invalid(&format!("{path}.Members"), "each member needs an OriginId")
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut failover_status_codes = Vec::new();
        if let Some(criteria) = f.take("FailoverCriteria") {
            let mut c = Fields::new(&f.at("FailoverCriteria"), &criteria)?;
            for code in c.items("StatusCodes")? {
                let code = code
                    .as_u64()
                    .and_then(|c| u16::try_from(c).ok())
                    .ok_or_else(|| invalid(&c.at("StatusCodes"), "expected status codes"))?;
                failover_status_codes.push(code);
            }
            self.finish(c);
        }
        if let Some(selection) = f.string("SelectionCriteria")?
            && selection != "default"
        {
            self.skip(
                f.at("SelectionCriteria"),
                format!("{selection}: the host tries members in order"),
            );
        }
        self.finish(f);
        if failover_status_codes.is_empty() {
            failover_status_codes = vec![500, 502, 503, 504];
        }
        Ok(OriginGroupConfig {
            id,
            members,
            failover_status_codes,
        })
    }

    fn behavior(
        &mut self,
        path: &str,
        value: &Value,
        ordered: bool,
    ) -> Result<CacheBehaviorConfig, ImportError> {
        let mut f = Fields::new(path, value)?;
        let path_pattern = if ordered {
            let pattern = f.required_string("PathPattern")?;
            // CloudFront patterns may omit the leading `/`; Edge's start with it.
            Some(if pattern.starts_with('/') {
                pattern
            } else {
                format!("/{pattern}")
            })
        } else {
            None
        };
        let target_origin_id = f.required_string("TargetOriginId")?;
        let mut ttls = [
            f.number("MinTTL")?,
            f.number("DefaultTTL")?,
            f.number("MaxTTL")?,
        ];
        let mut cache_key = CacheKeyConfig::default();
        let mut origin_request = OriginRequestConfig::default();
        if let Some(forwarded) = f.take("ForwardedValues") {
            (cache_key, origin_request) =
                self.forwarded_values(&f.at("ForwardedValues"), &forwarded)?;
        }
        if let Some(policy) = f.string("CachePolicyId")?.filter(|p| !p.is_empty()) {
            match MANAGED_POLICIES.iter().find(|(id, ..)| *id == policy) {
                Some((_, name, [min, default, max], all_queries)) => {
                    ttls = [Some(*min), Some(*default), Some(*max)];
                    if *all_queries {
                        cache_key.query_strings = QueryStrings::All;
                    }
                    if name.starts_with("UseOriginCacheControlHeaders") {
                        self.skip(
                            f.at("CachePolicyId"),
                            format!("{name}: its Origin and method-override headers and all cookies are not in the cache key"),
                        );
                    }
                }
                None => self.skip(
                    f.at("CachePolicyId"),
                    format!("{policy}: a custom cache policy; set the TTLs and cache_key by hand from `aws cloudfront get-cache-policy --id {policy}`"),
                ),
            }
        }
        if let Some(policy) = f.string("OriginRequestPolicyId")?.filter(|p| !p.is_empty()) {
            let at = f.at("OriginRequestPolicyId");
            let found = match MANAGED_ORIGIN_REQUEST_POLICIES
                .iter()
                .find(|(id, _)| *id == policy)
            {
                Some((_, name)) => Some(((*name).to_owned(), managed_origin_request_policy(name))),
                None => self
                    .origin_request_policies
                    .get(&policy)
                    .map(|c| (format!("origin request policy {policy}"), c.clone())),
            };
            match found {
                Some((name, config)) => {
                    origin_request =
                        self.origin_request_policy(&at, &name, &config, &cache_key.headers)?;
                }
                None => self.skip(
                    at,
                    format!("{policy}: a custom origin request policy; import again with `--origin-request-policy` and the output of `aws cloudfront get-origin-request-policy --id {policy}`, or set origin_request by hand"),
                ),
            }
        }
        self.skip_if_set(&mut f, "ResponseHeadersPolicyId", "response headers policies are not carried; add headers in a viewer-response hook (the security-headers example)");
        // CloudFront's API takes an absent `Compress` as false.
        let compress = f.boolean("Compress")?.unwrap_or(false);
        self.skip_if_set(
            &mut f,
            "SmoothStreaming",
            "Microsoft Smooth Streaming is not carried",
        );
        self.skip_if_set(
            &mut f,
            "FieldLevelEncryptionId",
            "field-level encryption is not carried",
        );
        self.skip_if_set(
            &mut f,
            "RealtimeLogConfigArn",
            "real-time logs are not carried; the host writes its own logs",
        );
        self.skip_if_set(&mut f, "TrustedSigners", "signed URLs and cookies are not carried; the edge-auth example checks an HMAC-signed cookie or token");
        self.skip_if_set(&mut f, "TrustedKeyGroups", "signed URLs and cookies are not carried; the edge-auth example checks an HMAC-signed cookie or token");
        if let Some(policy) = f.string("ViewerProtocolPolicy")?
            && policy != "allow-all"
        {
            self.skip(
                f.at("ViewerProtocolPolicy"),
                format!("{policy}: the host does not redirect or refuse plain HTTP by itself; answer 301 from a viewer-request hook, or listen on HTTPS only"),
            );
        }
        if let Some(methods) = f.take("AllowedMethods") {
            let count = methods
                .get("Items")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            if count < 7 {
                self.skip(
                    f.at("AllowedMethods"),
                    "the host passes every method to the origin, where CloudFront refused the unlisted ones with 403",
                );
            }
        }
        for (kind, key) in [
            ("Lambda@Edge function", "LambdaFunctionAssociations"),
            ("CloudFront function", "FunctionAssociations"),
        ] {
            for (i, association) in f.items(key)?.iter().enumerate() {
                let event = association
                    .get("EventType")
                    .and_then(Value::as_str)
                    .unwrap_or("?");
                let arn = association
                    .get("LambdaFunctionARN")
                    .or_else(|| association.get("FunctionARN"))
                    .and_then(Value::as_str)
                    .unwrap_or("?");
                let body = if association.get("IncludeBody").and_then(Value::as_bool) == Some(true)
                {
                    " with include_body: true (it reads the body)"
                } else {
                    ""
                };
                self.skip(
                    format!("{path}.{key}[{i}]"),
                    format!("{kind} {arn} on {event}: rewrite it as a Wasm hook, upload it with `edge hook upload`, and attach it under hooks.{}{body}", hook_event(event)),
                );
            }
        }
        self.finish(f);
        let [min_ttl, default_ttl, max_ttl] = ttls;
        Ok(CacheBehaviorConfig {
            path_pattern,
            target_origin_id,
            min_ttl,
            default_ttl,
            max_ttl,
            default_ttl_by_status: BTreeMap::new(),
            cache_key,
            origin_request,
            store_set_cookie: false,
            forwarding_headers: None,
            keep_tag_headers: false,
            serve_stale_on_error: true,
            websocket_idle_timeout_seconds: None,
            compress: Some(compress),
            hooks: HooksConfig::default(),
        })
    }

    /// The legacy cache key: query strings, cookies and headers forwarded.
    /// Query strings with `QueryStringCacheKeys` are all forwarded and keyed
    /// on the listed ones only.
    fn forwarded_values(
        &mut self,
        path: &str,
        value: &Value,
    ) -> Result<(CacheKeyConfig, OriginRequestConfig), ImportError> {
        let mut f = Fields::new(path, value)?;
        let mut key = CacheKeyConfig::default();
        let mut origin_request = OriginRequestConfig::default();
        let with_query = f.boolean("QueryString")?.unwrap_or(false);
        let query_keys = f.strings("QueryStringCacheKeys")?;
        key.query_strings = match (with_query, query_keys.is_empty()) {
            (false, _) => QueryStrings::None,
            (true, true) => QueryStrings::All,
            (true, false) => {
                origin_request.query_strings = QueryStrings::All;
                QueryStrings::Only(query_keys)
            }
        };
        if let Some(cookies) = f.take("Cookies") {
            let mut c = Fields::new(&f.at("Cookies"), &cookies)?;
            match c.string("Forward")?.as_deref() {
                Some("whitelist") => key.cookies = c.strings("WhitelistedNames")?,
                Some("all") => self.skip(
                    c.at("Forward"),
                    "all cookies in the cache key is not carried; list the cookies that vary the response in cache_key.cookies",
                ),
                _ => {}
            }
            c.take("WhitelistedNames");
            self.finish(c);
        }
        let headers = f.strings("Headers")?;
        if headers.iter().any(|h| h == "*") {
            self.skip(
                f.at("Headers"),
                "all headers in the cache key (CloudFront then caches nothing) is not carried; list the headers that vary the response",
            );
        } else {
            key.headers = headers;
        }
        self.finish(f);
        Ok((key, origin_request))
    }

    /// An `OriginRequestPolicyConfig` at `at` (named `name` in reports) as
    /// `origin_request`, reporting what the host forwards otherwise.
    /// `keyed` are the behavior's cache key headers.
    fn origin_request_policy(
        &mut self,
        at: &str,
        name: &str,
        config: &Value,
        keyed: &[String],
    ) -> Result<OriginRequestConfig, ImportError> {
        let keyed: Vec<HeaderName> = keyed
            .iter()
            .filter_map(|h| HeaderName::from_bytes(h.as_bytes()).ok())
            .collect();
        let mut f = Fields::new(&format!("{at}({name})"), config)?;
        f.take("Name");
        f.take("Comment");
        let mut out = OriginRequestConfig::default();
        let mut notes = Vec::new();
        if let Some(headers) = f.take("HeadersConfig") {
            let mut h = Fields::new(&f.at("HeadersConfig"), &headers)?;
            let behavior = h.string("HeaderBehavior")?.unwrap_or_default();
            let names = h.strings("Headers")?;
            let host_excepted =
                behavior == "allExcept" && names.iter().any(|n| n.eq_ignore_ascii_case("host"));
            match behavior.as_str() {
                "" | "none" => {}
                "whitelist" => {
                    let mut kept = Vec::new();
                    for header in names {
                        let why = match HeaderName::from_bytes(header.as_bytes()) {
                            Err(_) => Some("not a valid header name"),
                            Ok(_) if is_cloudfront_header(&header) => Some(CLOUDFRONT_NOT_SET),
                            Ok(parsed) => super::behavior::not_forwardable(&parsed, &keyed),
                        };
                        match why {
                            Some(why) => notes.push(format!("{header}: {why}")),
                            None => kept.push(header),
                        }
                    }
                    out.headers = Names::Only(kept);
                }
                "allViewer" | "allViewerAndWhitelistCloudFront" | "allExcept" => {
                    out.headers = Names::All;
                    if !host_excepted {
                        notes.push("the viewer's Host is not forwarded: the origin gets its domain_name as Host (as with AllViewerExceptHostHeader)".to_owned());
                    }
                    notes.push(format!("all viewer headers: {ALL_HEADERS_EXCEPT}"));
                    if behavior == "allViewerAndWhitelistCloudFront" && !names.is_empty() {
                        notes.push(format!("{}: {CLOUDFRONT_NOT_SET}", names.join(", ")));
                    }
                    let excepted: Vec<&str> = names
                        .iter()
                        .map(String::as_str)
                        .filter(|n| behavior == "allExcept" && !n.eq_ignore_ascii_case("host"))
                        .collect();
                    if !excepted.is_empty() {
                        notes.push(format!(
                            "{} are forwarded too: the host cannot leave a viewer header out",
                            excepted.join(", ")
                        ));
                    }
                }
                other => {
                    return Err(invalid(
                        &h.at("HeaderBehavior"),
                        &format!("{other:?} is not a header behavior"),
                    ));
                }
            }
            self.finish(h);
        }
        if let Some(cookies) = f.take("CookiesConfig") {
            let mut c = Fields::new(&f.at("CookiesConfig"), &cookies)?;
            let behavior = c.string("CookieBehavior")?.unwrap_or_default();
            let names = c.strings("Cookies")?;
            out.cookies = match behavior.as_str() {
                "" | "none" => Names::default(),
                "whitelist" => Names::Only(names),
                "all" => Names::All,
                "allExcept" => {
                    notes.push(format!(
                        "all cookies are forwarded, {} too",
                        names.join(", ")
                    ));
                    Names::All
                }
                other => {
                    return Err(invalid(
                        &c.at("CookieBehavior"),
                        &format!("{other:?} is not a cookie behavior"),
                    ));
                }
            };
            self.finish(c);
        }
        if let Some(query) = f.take("QueryStringsConfig") {
            let mut q = Fields::new(&f.at("QueryStringsConfig"), &query)?;
            let behavior = q.string("QueryStringBehavior")?.unwrap_or_default();
            let names = q.strings("QueryStrings")?;
            out.query_strings = match behavior.as_str() {
                "" | "none" => QueryStrings::None,
                "whitelist" => QueryStrings::Only(names),
                "all" => QueryStrings::All,
                "allExcept" => {
                    notes.push(format!(
                        "all query parameters are forwarded, {} too",
                        names.join(", ")
                    ));
                    QueryStrings::All
                }
                other => {
                    return Err(invalid(
                        &q.at("QueryStringBehavior"),
                        &format!("{other:?} is not a query string behavior"),
                    ));
                }
            };
            self.finish(q);
        }
        self.finish(f);
        for note in notes {
            self.skip(at.to_owned(), format!("{name}: {note}"));
        }
        Ok(out)
    }
}

/// Why a CloudFront header is not carried.
const CLOUDFRONT_NOT_SET: &str = "the host does not add CloudFront's headers (it sets X-Forwarded-For, X-Forwarded-Proto and Forwarded); a viewer's own CloudFront-* headers pass through as sent, so the origin must not trust them";

fn is_cloudfront_header(name: &str) -> bool {
    name.get(..11)
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case("cloudfront-"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A distribution as `aws cloudfront get-distribution-config` prints it:
    /// a custom origin and an S3 origin in a failover group, a legacy
    /// behavior, one on a managed cache policy, a Lambda@Edge function, an
    /// ACM certificate, WAF.
    fn document() -> Value {
        json!({
            "ETag": "E2QWRUHAPOMQZL",
            "DistributionConfig": {
                "CallerReference": "cli-1700000000-123456",
                "Aliases": {"Quantity": 2, "Items": ["www.example.com", "example.com"]},
                "DefaultRootObject": "index.html",
                "Origins": {"Quantity": 2, "Items": [
                    {
                        "Id": "app", "DomainName": "app.internal.example.com", "OriginPath": "/v2",
                        "CustomHeaders": {"Quantity": 1, "Items": [{"HeaderName": "X-Origin-Secret", "HeaderValue": "s3cr3t"}]},
                        "CustomOriginConfig": {
                            "HTTPPort": 8080, "HTTPSPort": 443, "OriginProtocolPolicy": "http-only",
                            "OriginSslProtocols": {"Quantity": 1, "Items": ["TLSv1.2"]},
                            "OriginReadTimeout": 45, "OriginKeepaliveTimeout": 10
                        },
                        "ConnectionAttempts": 3, "ConnectionTimeout": 5,
                        "OriginShield": {"Enabled": false}, "OriginAccessControlId": ""
                    },
                    {
                        "Id": "assets", "DomainName": "assets-bucket.s3.amazonaws.com", "OriginPath": "",
                        "CustomHeaders": {"Quantity": 0},
                        "S3OriginConfig": {"OriginAccessIdentity": ""},
                        "ConnectionAttempts": 1, "ConnectionTimeout": 10,
                        "OriginShield": {"Enabled": false}, "OriginAccessControlId": ""
                    }
                ]},
                "OriginGroups": {"Quantity": 1, "Items": [{
                    "Id": "app-failover",
                    "FailoverCriteria": {"StatusCodes": {"Quantity": 2, "Items": [502, 503]}},
                    "Members": {"Quantity": 2, "Items": [{"OriginId": "app"}, {"OriginId": "assets"}]},
                    "SelectionCriteria": "default"
                }]},
                "DefaultCacheBehavior": {
                    "TargetOriginId": "app-failover",
                    "TrustedSigners": {"Enabled": false, "Quantity": 0},
                    "TrustedKeyGroups": {"Enabled": false, "Quantity": 0},
                    "ViewerProtocolPolicy": "allow-all",
                    "AllowedMethods": {"Quantity": 7, "Items": ["HEAD", "DELETE", "POST", "GET", "OPTIONS", "PUT", "PATCH"],
                        "CachedMethods": {"Quantity": 2, "Items": ["HEAD", "GET"]}},
                    "SmoothStreaming": false, "Compress": false,
                    "LambdaFunctionAssociations": {"Quantity": 1, "Items": [{
                        "LambdaFunctionARN": "arn:aws:lambda:us-east-1:123456789012:function:router:7",
                        "EventType": "viewer-request", "IncludeBody": false
                    }]},
                    "FunctionAssociations": {"Quantity": 0},
                    "FieldLevelEncryptionId": "",
                    "ForwardedValues": {
                        "QueryString": true,
                        "Cookies": {"Forward": "whitelist", "WhitelistedNames": {"Quantity": 1, "Items": ["session"]}},
                        "Headers": {"Quantity": 1, "Items": ["Accept-Language"]},
                        "QueryStringCacheKeys": {"Quantity": 1, "Items": ["page"]}
                    },
                    "MinTTL": 0, "DefaultTTL": 3600, "MaxTTL": 86400
                },
                "CacheBehaviors": {"Quantity": 1, "Items": [{
                    "PathPattern": "static/*",
                    "TargetOriginId": "assets",
                    "ViewerProtocolPolicy": "redirect-to-https",
                    "AllowedMethods": {"Quantity": 2, "Items": ["HEAD", "GET"]},
                    "Compress": true,
                    "LambdaFunctionAssociations": {"Quantity": 0},
                    "CachePolicyId": "658327ea-f89d-4fab-a63d-7e88639e58f6"
                }]},
                "CustomErrorResponses": {"Quantity": 0},
                "Comment": "shop front",
                "Logging": {"Enabled": false, "IncludeCookies": false, "Bucket": "", "Prefix": ""},
                "PriceClass": "PriceClass_100",
                "Enabled": true,
                "ViewerCertificate": {
                    "ACMCertificateArn": "arn:aws:acm:us-east-1:123456789012:certificate/abc",
                    "SSLSupportMethod": "sni-only", "MinimumProtocolVersion": "TLSv1.2_2021"
                },
                "Restrictions": {"GeoRestriction": {"RestrictionType": "none", "Quantity": 0}},
                "WebACLId": "arn:aws:wafv2:us-east-1:123456789012:global/webacl/shop/1",
                "HttpVersion": "http2",
                "IsIPV6Enabled": false,
                "ContinuousDeploymentPolicyId": "",
                "Staging": false
            }
        })
    }

    fn fields(imported: &Imported) -> Vec<&str> {
        imported
            .not_carried
            .iter()
            .map(|n| n.field.as_str())
            .collect()
    }

    #[test]
    fn carries_origins_groups_behaviors_and_cache_keys() {
        let imported = import(&document()).expect("imports");
        let c = &imported.config;
        assert_eq!(c.aliases, ["www.example.com", "example.com"]);
        assert_eq!(c.comment, "shop front");
        let app = &c.origins[0];
        assert_eq!(app.domain_name, "app.internal.example.com:8080");
        assert_eq!(app.protocol, Protocol::Http);
        assert_eq!(app.origin_path, "/v2");
        assert_eq!(app.custom_headers["X-Origin-Secret"], "s3cr3t");
        assert_eq!(app.connect_timeout_ms, Some(5000));
        assert_eq!(app.read_timeout_ms, Some(45_000));
        assert_eq!(app.keepalive_timeout_ms, Some(10_000));
        assert_eq!(c.origins[1].domain_name, "assets-bucket.s3.amazonaws.com");
        assert_eq!(c.origins[1].protocol, Protocol::Https);
        assert_eq!(c.origin_groups[0].members, ["app", "assets"]);
        assert_eq!(c.origin_groups[0].failover_status_codes, [502, 503]);
        let d = &c.default_cache_behavior;
        assert_eq!(d.target_origin_id, "app-failover");
        assert_eq!(
            (d.min_ttl, d.default_ttl, d.max_ttl),
            (Some(0), Some(3600), Some(86_400))
        );
        assert_eq!(
            d.cache_key.query_strings,
            QueryStrings::Only(vec!["page".into()])
        );
        assert_eq!(d.cache_key.cookies, ["session"]);
        assert_eq!(d.cache_key.headers, ["Accept-Language"]);
        // CloudFront forwards every query parameter and keys on the listed.
        assert_eq!(d.origin_request.query_strings, QueryStrings::All);
        let s = &c.cache_behaviors[0];
        assert_eq!(s.path_pattern.as_deref(), Some("/static/*"));
        // `Compress` as CloudFront had it, false included.
        assert_eq!((d.compress, s.compress), (Some(false), Some(true)));
        assert_eq!(
            (s.min_ttl, s.default_ttl, s.max_ttl),
            (Some(1), Some(86_400), Some(31_536_000))
        );
        // What the host accepts: the import is a valid Edge config.
        crate::config::Distribution::try_from(c.clone()).expect("a valid config");
    }

    #[test]
    fn names_everything_it_leaves_behind_and_nothing_unset() {
        let imported = import(&document()).expect("imports");
        let mut left = fields(&imported);
        left.sort_unstable();
        assert_eq!(
            left,
            [
                "CacheBehaviors[0].AllowedMethods",
                "CacheBehaviors[0].ViewerProtocolPolicy",
                "DefaultCacheBehavior.LambdaFunctionAssociations[0]",
                "DefaultRootObject",
                "Origins[0].ConnectionAttempts",
                "PriceClass",
                "ViewerCertificate",
                "WebACLId",
            ]
        );
        let lambda = &imported
            .not_carried
            .iter()
            .find(|n| n.field.contains("Lambda"))
            .expect("lambda");
        assert!(
            lambda.reason.contains("function:router:7"),
            "{}",
            lambda.reason
        );
        assert!(
            lambda.reason.contains("hooks.viewer_request"),
            "{}",
            lambda.reason
        );
        assert!(!lambda.reason.contains("include_body"), "{}", lambda.reason);
        // A function that reads the body is to be attached with include_body.
        let mut doc = document();
        doc["DistributionConfig"]["DefaultCacheBehavior"]["LambdaFunctionAssociations"]["Items"]
            [0]["IncludeBody"] = Value::Bool(true);
        let imported = import(&doc).expect("imports");
        let lambda = imported
            .not_carried
            .iter()
            .find(|n| n.field.contains("Lambda"))
            .expect("lambda");
        assert!(
            lambda.reason.contains("with include_body: true"),
            "{}",
            lambda.reason
        );
    }

    #[test]
    fn unknown_fields_are_reported_unless_unset() {
        let mut doc = document();
        let config = doc["DistributionConfig"].as_object_mut().expect("object");
        config.insert("AnycastIpListId".into(), json!("aip-123"));
        config.insert(
            "TenantConfig".into(),
            json!({"ParameterDefinitions": {"Quantity": 0}}),
        );
        let imported = import(&doc).expect("imports");
        let left = fields(&imported);
        assert!(left.contains(&"AnycastIpListId"));
        assert!(!left.contains(&"TenantConfig"));
    }

    #[test]
    fn the_bare_config_imports_too_and_bad_documents_are_refused() {
        let bare = document()["DistributionConfig"].clone();
        assert_eq!(import(&bare).expect("imports").config.aliases.len(), 2);
        let err =
            import(&json!({"Origins": {"Quantity": 0, "Items": []}})).expect_err("no origins");
        assert_eq!(err.field, "Origins");
        let err = import(&json!({"Origins": {"Items": [{"Id": "a"}]}})).expect_err("no domain");
        assert_eq!(err.field, "Origins[0].DomainName");
        assert!(import(&json!([1, 2])).is_err());
    }

    #[test]
    fn standard_logging_becomes_the_access_log() {
        let mut doc = document();
        doc["DistributionConfig"]["Logging"] = json!({
            "Enabled": true, "IncludeCookies": true,
            "Bucket": "logs.s3.amazonaws.com", "Prefix": "shop/"
        });
        let imported = import(&doc).expect("imports");
        assert!(imported.config.logging.enabled && imported.config.logging.include_cookies);
        assert!(fields(&imported).contains(&"Logging.Bucket"));
    }

    #[test]
    fn forwarded_values_variants() {
        let mut doc = document();
        let behavior = &mut doc["DistributionConfig"]["DefaultCacheBehavior"];
        behavior["ForwardedValues"] = json!({
            "QueryString": true,
            "Cookies": {"Forward": "all"},
            "Headers": {"Quantity": 1, "Items": ["*"]},
            "QueryStringCacheKeys": {"Quantity": 0}
        });
        let imported = import(&doc).expect("imports");
        let key = &imported.config.default_cache_behavior.cache_key;
        assert_eq!(key.query_strings, QueryStrings::All);
        assert!(key.headers.is_empty() && key.cookies.is_empty());
        let left = fields(&imported);
        assert!(left.contains(&"DefaultCacheBehavior.ForwardedValues.Cookies.Forward"));
        assert!(left.contains(&"DefaultCacheBehavior.ForwardedValues.Headers"));
    }

    /// The document with its default behavior on `CachingDisabled` and the
    /// origin request policy `policy`.
    fn with_origin_request_policy(policy: &str) -> Value {
        let mut doc = document();
        let behavior = &mut doc["DistributionConfig"]["DefaultCacheBehavior"];
        let behavior = behavior.as_object_mut().expect("object");
        behavior.remove("ForwardedValues");
        behavior.remove("MinTTL");
        behavior.remove("DefaultTTL");
        behavior.remove("MaxTTL");
        behavior.insert(
            "CachePolicyId".into(),
            json!("4135ea2d-6df8-44a3-9df3-4b5a84be39ad"),
        );
        behavior.insert("OriginRequestPolicyId".into(), json!(policy));
        doc
    }

    /// What was reported about the default behavior's origin request policy.
    fn policy_notes(imported: &Imported) -> Vec<&str> {
        imported
            .not_carried
            .iter()
            .filter(|n| n.field == "DefaultCacheBehavior.OriginRequestPolicyId")
            .map(|n| n.reason.as_str())
            .collect()
    }

    #[test]
    fn caching_disabled_with_all_viewer_forwards_everything_and_keys_nothing() {
        let imported = import(&with_origin_request_policy(
            "216adef6-5c7f-47e4-b989-5492eafa07d3",
        ))
        .expect("imports");
        let d = &imported.config.default_cache_behavior;
        assert_eq!(d.cache_key, CacheKeyConfig::default());
        assert_eq!(
            (d.min_ttl, d.default_ttl, d.max_ttl),
            (Some(0), Some(0), Some(0))
        );
        assert_eq!(
            d.origin_request,
            OriginRequestConfig {
                query_strings: QueryStrings::All,
                headers: Names::All,
                cookies: Names::All,
            }
        );
        let notes = policy_notes(&imported);
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(notes[0].starts_with("AllViewer: the viewer's Host is not forwarded"));
        assert!(notes[1].contains("X-Forwarded-Host"), "{}", notes[1]);
        let valid = crate::config::Distribution::try_from(imported.config.clone()).expect("valid");
        assert_eq!(
            valid.default_behavior.forward,
            crate::config::ForwardPolicy {
                query_strings: QueryStrings::All,
                cookies: Names::All,
            }
        );
    }

    #[test]
    fn managed_origin_request_policies_map_and_say_what_is_not_carried() {
        let list = |names: &[&str]| Names::Only(names.iter().map(|n| (*n).to_owned()).collect());
        let cases = [
            (
                "b689b0a8-53d0-40ab-baf2-68738e2966ac",
                Names::All,
                Names::All,
                QueryStrings::All,
                1,
            ),
            (
                "33f36d7e-f396-46d9-90e0-52428a34d9dc",
                Names::All,
                Names::All,
                QueryStrings::All,
                3,
            ),
            (
                "acba4595-bd28-49b8-b9fe-13317c0390fa",
                list(&["user-agent", "referer"]),
                Names::default(),
                QueryStrings::None,
                0,
            ),
            (
                "88a5eaf4-2fd4-4709-b370-b4c650ea3fcf",
                list(&[
                    "origin",
                    "access-control-request-method",
                    "access-control-request-headers",
                ]),
                Names::default(),
                QueryStrings::None,
                0,
            ),
            (
                "59781a5b-3903-41f3-afcb-af62929ccde1",
                list(&["origin"]),
                Names::default(),
                QueryStrings::None,
                0,
            ),
        ];
        for (id, headers, cookies, query_strings, notes) in cases {
            let imported = import(&with_origin_request_policy(id)).expect("imports");
            let got = &imported.config.default_cache_behavior.origin_request;
            let want = OriginRequestConfig {
                query_strings,
                headers,
                cookies,
            };
            assert_eq!(got, &want, "{id}");
            assert_eq!(
                policy_notes(&imported).len(),
                notes,
                "{id}: {:?}",
                policy_notes(&imported)
            );
            crate::config::Distribution::try_from(imported.config.clone()).expect("valid");
        }
        // Host is forwarded by neither, and CloudFront's own headers are not made.
        let except_host = import(&with_origin_request_policy(
            "b689b0a8-53d0-40ab-baf2-68738e2966ac",
        ))
        .expect("imports");
        assert!(!policy_notes(&except_host)[0].contains("Host is not forwarded"));
        let cloudfront = import(&with_origin_request_policy(
            "33f36d7e-f396-46d9-90e0-52428a34d9dc",
        ))
        .expect("imports");
        let notes = policy_notes(&cloudfront);
        assert!(
            notes
                .iter()
                .any(|n| n.contains("CloudFront-Viewer-Address") && n.contains("must not trust")),
            "{notes:?}"
        );
        // MediaTailor's X-Forwarded-For is the host's.
        let tailor = import(&with_origin_request_policy(
            "775133bc-15f2-49f9-abea-afb2e0bf67d2",
        ))
        .expect("imports");
        let got = &tailor.config.default_cache_behavior.origin_request;
        assert!(!got.headers.includes(|h| h == "x-forwarded-for"), "{got:?}");
        assert!(
            policy_notes(&tailor)[0]
                .starts_with("Elemental-MediaTailor-PersonalizedManifests: x-forwarded-for:")
        );
        crate::config::Distribution::try_from(tailor.config.clone()).expect("valid");
    }

    #[test]
    fn custom_origin_request_policies_are_read_when_given() {
        let id = "0a1b2c3d-1111-2222-3333-444455556666";
        let doc = with_origin_request_policy(id);
        let without = import(&doc).expect("imports");
        assert!(policy_notes(&without)[0].contains("--origin-request-policy"));
        assert!(
            without
                .config
                .default_cache_behavior
                .origin_request
                .is_empty()
        );

        let policy = OriginRequestPolicy::read(&json!({
            "ETag": "E3UN6WX5RRO2AG",
            "OriginRequestPolicy": {
                "Id": id,
                "LastModifiedTime": "2024-01-01T00:00:00Z",
                "OriginRequestPolicyConfig": {
                    "Name": "api", "Comment": "",
                    "HeadersConfig": {"HeaderBehavior": "whitelist", "Headers": {"Quantity": 3,
                        "Items": ["X-Api-Version", "X-Forwarded-Host", "CloudFront-Viewer-Country"]}},
                    "CookiesConfig": {"CookieBehavior": "whitelist", "Cookies": {"Quantity": 1, "Items": ["session"]}},
                    "QueryStringsConfig": {"QueryStringBehavior": "allExcept", "QueryStrings": {"Quantity": 1, "Items": ["utm_source"]}}
                }
            }
        }))
        .expect("a policy");
        let imported = import_with(&doc, &[policy]).expect("imports");
        let got = &imported.config.default_cache_behavior.origin_request;
        assert_eq!(got.headers, Names::Only(vec!["X-Api-Version".into()]));
        assert_eq!(got.cookies, Names::Only(vec!["session".into()]));
        assert_eq!(got.query_strings, QueryStrings::All);
        let notes = policy_notes(&imported);
        assert_eq!(notes.len(), 3, "{notes:?}");
        assert!(
            notes[0].contains("X-Forwarded-Host: a URL- or method-override field"),
            "{notes:?}"
        );
        assert!(notes[1].contains("CloudFront-Viewer-Country"), "{notes:?}");
        assert!(notes[2].contains("utm_source too"), "{notes:?}");
        crate::config::Distribution::try_from(imported.config.clone()).expect("valid");

        let err = OriginRequestPolicy::read(&json!({"OriginRequestPolicy": {"Id": id}}))
            .expect_err("no config");
        assert_eq!(err.field, "OriginRequestPolicy.OriginRequestPolicyConfig");
    }
}
