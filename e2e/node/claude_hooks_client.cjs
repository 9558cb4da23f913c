// Drives the Claude Code hooks' own MemoryClient (claude-hooks/utilities/memory-client.js
// from mcp-memory-service's source archive, unchanged) the way the session-start hook
// does: connect, health, store, search by meaning, recent memories by time.
// e2e/tests/claude_hooks.rs runs it and judges what the client returned.
//
// Usage: node claude_hooks_client.cjs <memory-client.js> <scenario JSON>
// The scenario is {config, content, tags, query}: config is the hooks' memoryService
// section. In MCP mode the client spawns config.mcp.serverCommand with this process's
// environment, which carries the bridge's settings.
// Prints one JSON line per step: {"step": name, "result": what the client returned},
// among the client's own log lines.
'use strict';

const [clientPath, scenarioJson] = process.argv.slice(2);
const { MemoryClient } = require(clientPath);
const scenario = JSON.parse(scenarioJson);

function print(step, result) {
    process.stdout.write(JSON.stringify({ step, result }) + '\n');
}

async function main() {
    const client = new MemoryClient(scenario.config);
    await client.connect();
    print('connect', client.getConnectionInfo());
    print('health', await client.getHealthStatus());
    print('store', await client.storeMemory(scenario.content, {
        tags: scenario.tags,
        memoryType: 'note',
    }));
    print('query', await client.queryMemories(scenario.query, 5));
    // "last 2 weeks" as mcp-memory-service's time parser reads it (up to now; its
    // "last week" is the previous calendar week, which excludes today).
    print('by_time', await client.queryMemoriesByTime('last 2 weeks', 5, scenario.query));
    if (client.activeProtocol === 'mcp') {
        // The hooks' MCP parser turns retrieve_memory's text into [] unless the text is
        // JSON (against mcp-memory-service too, whose text is "Found the following
        // memories: ..."), so the answer is also shown as the client received it.
        print('retrieve_raw', await client.mcpClient.callTool('retrieve_memory', {
            query: scenario.query,
            n_results: 5,
        }));
    } else {
        print('by_tags_and_time', await client.queryMemoriesByTagsAndTime(
            scenario.tags.slice(0, 1), 'last-2-weeks', 5, false));
    }
    await client.disconnect();
}

main().then(
    // The client leaves request timers running (it never clears them): exit now
    // rather than wait for them.
    () => process.exit(0),
    (error) => {
        print('error', { message: error.message });
        process.exit(1);
    },
);
