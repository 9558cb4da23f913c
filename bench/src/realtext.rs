//! The benchmark corpus: real sentences from the documentation that ships with this
//! machine's toolchains (Python's standard-library docstrings, then the Rust
//! toolchain's HTML docs), extracted once and cached in `$MNEMO_CACHE_DIR/bench/`.
//!
//! Real text matters: random vectors or templated sentences spread over the embedding
//! space nothing like real memories do, so neither recall nor scan cost would mean
//! anything. The text is extracted by the harness, never committed.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

/// Bump when the extraction changes, so old caches are not mistaken for new ones.
const VERSION: &str = "v1";

/// One in this many sentences is held out as a query and never stored.
const QUERY_EVERY: usize = 50;

/// Walks the given roots in a fixed order and prints one normalised sentence per line.
const EXTRACT: &str = r#"
import ast, html, os, re, sys, sysconfig
SPLIT = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
seen = set()
def emit(text):
    for s in SPLIT.split(" ".join(text.split())):
        if 5 <= len(s.split()) <= 60 and s not in seen and not s.startswith(">>>"):
            seen.add(s)
            print(s)
def walk(root, suffix, skip=()):
    for d, dirs, files in os.walk(root):
        dirs[:] = sorted(x for x in dirs if x not in skip)
        for f in sorted(files):
            if f.endswith(suffix):
                yield os.path.join(d, f)
stdlib = sysconfig.get_paths()["stdlib"]
for path in walk(stdlib, ".py", ("site-packages", "test", "tests", "idlelib", "__pycache__", "lib2to3")):
    try:
        tree = ast.parse(open(path, encoding="utf-8").read())
    except Exception:
        continue
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node, clean=True)
            if doc:
                for para in re.split(r"\n\s*\n", doc):
                    emit(para)
P = re.compile(r"<p>(.*?)</p>", re.S)
TAG = re.compile(r"<[^>]+>")
for root in sys.argv[1:]:
    for path in walk(root, ".html"):
        text = open(path, encoding="utf-8", errors="replace").read()
        for m in P.finditer(text):
            emit(html.unescape(TAG.sub("", m.group(1))))
"#;

/// Deterministic real text: memories to store and held-out queries.
pub struct Corpus {
    /// Sentences that become memories, in extraction order.
    sentences: Vec<String>,
    queries: Vec<String>,
    /// FNV-1a of the extracted text, so two reports can tell whether they used the
    /// same corpus.
    pub fingerprint: String,
}

impl Corpus {
    /// Loads the cached corpus, extracting it first if needed.
    pub fn load(cache_dir: &Path) -> anyhow::Result<Self> {
        let path = cache_dir.join(format!("corpus-{VERSION}.txt"));
        let text = match std::fs::read_to_string(&path) {
            Ok(text) if !text.is_empty() => text,
            _ => {
                let text = extract()?;
                std::fs::create_dir_all(cache_dir)?;
                let partial = path.with_extension("partial");
                std::fs::write(&partial, &text)?;
                std::fs::rename(&partial, &path)?;
                text
            }
        };
        let mut sentences = Vec::new();
        let mut queries = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if i % QUERY_EVERY == QUERY_EVERY - 1 {
                queries.push(line.to_owned());
            } else {
                sentences.push(line.to_owned());
            }
        }
        if sentences.len() < 1000 || queries.is_empty() {
            bail!(
                "only {} sentences extracted into {}; need Python 3's standard library",
                sentences.len(),
                path.display()
            );
        }
        Ok(Self {
            sentences,
            queries,
            fingerprint: format!("{:016x}", fnv1a(text.as_bytes())),
        })
    }

    /// Distinct sentences available before memories become sentence pairs.
    pub fn sentences(&self) -> usize {
        self.sentences.len()
    }

    /// The `i`-th memory. Past the extracted sentences, memories are pairs of them
    /// (still real text, and distinct for every `i` below twice the sentence count
    /// squared), so any level can be seeded.
    pub fn memory(&self, i: usize) -> String {
        let m = self.sentences.len();
        if i < m {
            return self.sentences[i].clone();
        }
        let t = i - m;
        let second = (t.wrapping_mul(7919) + t / m + 1) % m;
        format!("{} {}", self.sentences[t % m], self.sentences[second])
    }

    /// The first `n` memories, with duplicates (a pair that happens to equal another
    /// text) skipped, so that every text is stored exactly once.
    pub fn memories(&self, n: usize) -> Vec<String> {
        let mut seen = HashSet::with_capacity(n);
        let mut out = Vec::with_capacity(n);
        let mut i = 0;
        while out.len() < n {
            let text = self.memory(i);
            if seen.insert(text.clone()) {
                out.push(text);
            }
            i += 1;
        }
        out
    }

    /// The `i`-th query (cycling through the held-out sentences).
    pub fn query(&self, i: usize) -> &str {
        &self.queries[i % self.queries.len()]
    }

    pub fn query_count(&self) -> usize {
        self.queries.len()
    }
}

fn extract() -> anyhow::Result<String> {
    let mut command = Command::new("python3");
    command.arg("-c").arg(EXTRACT);
    if let Some(html) = rust_docs() {
        command.arg(html);
    }
    let output = command
        .output()
        .context("running python3 to extract the benchmark corpus")?;
    if !output.status.success() {
        bail!(
            "corpus extraction failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8(output.stdout)?)
}

/// The active Rust toolchain's HTML documentation, if the rust-docs component is there.
fn rust_docs() -> Option<PathBuf> {
    let output = Command::new("rustc")
        .arg("--print")
        .arg("sysroot")
        .output()
        .ok()?;
    let sysroot = String::from_utf8(output.stdout).ok()?;
    let html = PathBuf::from(sysroot.trim()).join("share/doc/rust/html");
    html.is_dir().then_some(html)
}

pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}
