//! Every MCP tool schema, as `tools/list` gives it, compiled by ajv (the JSON Schema
//! validator most JavaScript MCP clients use) in strict mode, which refuses what JSON
//! Schema does not define (such as schemars' `format: "uint32"`).
//!
//! ajv comes from npm, pinned in `e2e/node/package.json` and installed by the
//! Makefile into `<MNEMO_CACHE_DIR>/tools/node/node_modules`; without it the test fails
//! with that instruction rather than skip. The tools are listed by the real
//! `mnemo-bridge`, which serves the same registry as the server's `/mcp` and needs no
//! server for `tools/list`.

use std::io::Write;
use std::process::{Command, Stdio};

use mnemo_e2e::BridgeProcess;
use mnemo_server::testing::workspace_binary;
use serde_json::{Value, json};

/// Compiles each `{name, schema}` of stdin's JSON array with Ajv 2020-12 in strict
/// mode; prints one line per failure and exits 1 if there was any.
const COMPILE: &str = r#"
const Ajv2020 = require("ajv/dist/2020");
const schemas = JSON.parse(require("fs").readFileSync(0, "utf8"));
let failed = 0;
for (const { name, schema } of schemas) {
  try {
    new Ajv2020({ strict: true, allErrors: true }).compile(schema);
  } catch (e) {
    failed += 1;
    console.log(`${name}: ${e.message}`);
  }
}
console.log(`compiled ${schemas.length - failed} of ${schemas.length}`);
process.exit(failed ? 1 : 0);
"#;

/// Every listed tool's input and output schema compiles under ajv's strict mode.
#[test]
fn every_tool_schema_compiles_in_ajv_strict_mode() {
    let modules = mnemo_e2e::node::node_modules("ajv");
    let mut command = Command::new(workspace_binary("mnemo-bridge"));
    command
        .env("MCP_MEMORY_AUTO_DISCOVER", "false")
        .env("MCP_MEMORY_HTTP_ENDPOINT", "http://127.0.0.1:9")
        .env_remove("MCP_MEMORY_CERT_FINGERPRINT");
    let mut bridge = BridgeProcess::spawn(command);
    bridge.initialize("2025-06-18");
    let (listed, _) = bridge.request("tools/list", json!({}));
    let tools = listed["tools"]
        .as_array()
        .expect("tools/list answers tools");
    assert_eq!(tools.len(), 7, "{listed}");
    let mut schemas = Vec::new();
    for tool in tools {
        let name = tool["name"].as_str().unwrap();
        schemas.push(json!({"name": format!("{name} input"), "schema": tool["inputSchema"]}));
        assert!(
            tool["outputSchema"].is_object(),
            "{name} has no output schema"
        );
        schemas.push(json!({"name": format!("{name} output"), "schema": tool["outputSchema"]}));
    }

    let mut node = Command::new("node")
        .arg("-e")
        .arg(COMPILE)
        .env("NODE_PATH", &modules)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run node (Debian's `nodejs` package)");
    node.stdin
        .take()
        .unwrap()
        .write_all(Value::from(schemas).to_string().as_bytes())
        .unwrap();
    let output = node.wait_with_output().unwrap();
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "ajv strict mode refused schemas:\n{report}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(report.contains("compiled 14 of 14"), "{report}");
}
