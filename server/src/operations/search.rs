//! Finding memories: by meaning (semantic), by meaning and keywords (hybrid), by
//! exact text, by tag and by time. Every answer is mcp-memory-service's envelope:
//! results with `similarity_score`, `cosine_similarity` and a `relevance_reason`.

use std::time::Instant;

use jiff::tz::TimeZone;
use mnemo_api::rest::{
    self, MAX_RESULTS, SearchMode, SearchRequest, SearchResponse, SearchResult, SimilarQuery,
    TagMatch, TagSearchRequest, TimeSearchRequest,
};

use super::OpError;
use crate::memory::{Filter, Memory, ScoredMemory};
use crate::service::MemoryService;
use crate::telemetry;
use crate::timeexpr;

/// `mode` picks semantic (the default), hybrid or exact.
pub async fn search(
    service: &MemoryService,
    request: SearchRequest,
) -> Result<SearchResponse, OpError> {
    let started = Instant::now();
    let query = request.query.trim().to_owned();
    if query.is_empty() {
        return Err(OpError::bad_request("query is empty"));
    }
    let k = request.n_results.min(MAX_RESULTS);
    let filter = filter(
        request.tags,
        request.tag_match,
        request.memory_type,
        &request.period,
    )?;
    let mut results: Vec<SearchResult> = match request.mode {
        SearchMode::Semantic => service
            .search(&query, k, filter)
            .await?
            .into_iter()
            .map(|hit| scored(hit, "semantic similarity".into()))
            .collect(),
        SearchMode::Hybrid => service
            .search_hybrid(&query, k, filter)
            .await?
            .into_iter()
            .map(|h| {
                let reason = match (h.semantic_rank, h.keyword_rank) {
                    (Some(s), Some(w)) => format!("hybrid: semantic rank {s}, keyword rank {w}"),
                    (Some(s), None) => format!("hybrid: semantic rank {s}"),
                    (None, Some(w)) => format!("hybrid: keyword rank {w}"),
                    (None, None) => "hybrid".into(),
                };
                scored(h.hit, reason)
            })
            .collect(),
        SearchMode::Exact => service
            .search_exact(&query, k, filter)
            .await?
            .into_iter()
            .map(|m| exact(m, "exact substring match"))
            .collect(),
    };
    if let Some(threshold) = request.similarity_threshold {
        results.retain(|r: &SearchResult| r.similarity_score >= threshold);
    }
    Ok(envelope(results, query, request.mode.as_str(), started))
}

/// The memories nearest to a stored one, by its stored vector, itself left out. Out of
/// range `n_results` is refused rather than clamped, as mcp-memory-service does (422
/// there, the usual 400 here).
pub async fn similar(
    service: &MemoryService,
    content_hash: &str,
    query: SimilarQuery,
) -> Result<SearchResponse, OpError> {
    let started = Instant::now();
    let k = query.n_results.unwrap_or(10);
    if !(1..=MAX_RESULTS).contains(&k) {
        return Err(OpError::bad_request(format!(
            "n_results is {k}; give 1 to {MAX_RESULTS}"
        )));
    }
    let (target, hits) = service.similar(content_hash, k).await?;
    let results = hits
        .into_iter()
        .map(|hit| scored(hit, "similar to the given memory".into()))
        .collect();
    // mcp-memory-service's wording, which its dashboard shows.
    let head: String = target.content.chars().take(50).collect();
    Ok(envelope(
        results,
        format!("Similar to: {head}..."),
        "similar",
        started,
    ))
}

/// Memories with any (or all) of the tags, newest first.
pub async fn by_tag(
    service: &MemoryService,
    request: TagSearchRequest,
) -> Result<SearchResponse, OpError> {
    let started = Instant::now();
    if request.tags.iter().all(|t| t.trim().is_empty()) {
        return Err(OpError::bad_request("give at least one tag"));
    }
    let query = request.tags.join(",");
    let filter = Filter {
        tags: request.tags,
        tag_match: if request.match_all {
            TagMatch::All
        } else {
            TagMatch::Any
        },
        ..Filter::default()
    };
    let page = service
        .list(filter, 1, request.limit.clamp(1, MAX_RESULTS))
        .await?;
    let results = page
        .memories
        .into_iter()
        .map(|m| exact(m, "tag match"))
        .collect();
    Ok(envelope(results, query, "tag", started))
}

/// Memories of a period ("yesterday", "last week", …), ranked by `semantic_query`
/// when given, else newest first.
pub async fn by_time(
    service: &MemoryService,
    request: TimeSearchRequest,
) -> Result<SearchResponse, OpError> {
    let started = Instant::now();
    let tz = timeexpr::parse_tz(request.tz.as_deref())?;
    let range = timeexpr::parse(&request.query, jiff::Timestamp::now(), &tz)?;
    let filter = Filter {
        after: range.start,
        before: range.end,
        ..Filter::default()
    };
    let k = request.n_results.clamp(1, MAX_RESULTS);
    let reason = format!("created {}", request.query.trim());
    let results = match request.semantic_query.as_deref().map(str::trim) {
        Some(text) if !text.is_empty() => service
            .search(text, k, filter)
            .await?
            .into_iter()
            .map(|hit| scored(hit, format!("{reason}; semantic similarity")))
            .collect(),
        _ => service
            .list(filter, 1, k)
            .await?
            .memories
            .into_iter()
            .map(|m| exact(m, &reason))
            .collect(),
    };
    Ok(envelope(results, request.query, "time", started))
}

/// A request's filter: its tags and type, and its creation-time bounds, `after` and
/// `before` narrowed by the period of a `time` phrase read in zone `tz`.
pub(super) fn filter(
    tags: Vec<String>,
    tag_match: TagMatch,
    memory_type: Option<String>,
    period: &rest::Period,
) -> Result<Filter, OpError> {
    let tz = timeexpr::parse_tz(period.tz.as_deref())?;
    let mut after = period.after.as_ref().map(|t| instant(t, &tz)).transpose()?;
    let mut before = period
        .before
        .as_ref()
        .map(|t| instant(t, &tz))
        .transpose()?;
    if let Some(text) = period
        .time
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        let range = timeexpr::find(text, jiff::Timestamp::now(), &tz)?;
        after = [after, range.start].into_iter().flatten().reduce(f64::max);
        before = [before, range.end].into_iter().flatten().reduce(f64::min);
    }
    Ok(Filter {
        tags,
        tag_match,
        memory_type,
        after,
        before,
    })
}

/// An instant of a request (epoch seconds or text) as epoch seconds.
pub(super) fn instant(value: &rest::Instant, tz: &TimeZone) -> Result<f64, OpError> {
    match value {
        rest::Instant::Epoch(seconds) if seconds.is_finite() => Ok(*seconds),
        rest::Instant::Epoch(_) => Err(OpError::bad_request("a time must be a finite number")),
        rest::Instant::Text(text) => Ok(timeexpr::parse_instant(text, tz)?),
    }
}

fn scored(hit: ScoredMemory, relevance_reason: String) -> SearchResult {
    SearchResult {
        similarity_score: hit.similarity_score(),
        cosine_similarity: hit.cosine_similarity,
        memory: hit.memory.into(),
        relevance_reason,
    }
}

/// A hit found by a filter rather than by similarity: it matches fully.
fn exact(memory: Memory, reason: &str) -> SearchResult {
    SearchResult {
        memory: memory.into(),
        similarity_score: 1.0,
        cosine_similarity: 1.0,
        relevance_reason: reason.to_owned(),
    }
}

/// mcp-memory-service's answer to a search; its time goes to the search latency of its
/// mode.
fn envelope(
    results: Vec<SearchResult>,
    query: String,
    search_type: &'static str,
    started: Instant,
) -> SearchResponse {
    metrics::histogram!(telemetry::SEARCH_DURATION, "mode" => search_type)
        .record(started.elapsed());
    SearchResponse {
        total_found: results.len(),
        results,
        query,
        search_type: search_type.to_owned(),
        processing_time_ms: started.elapsed().as_secs_f64() * 1000.0,
    }
}
