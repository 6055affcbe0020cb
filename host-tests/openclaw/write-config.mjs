// Writes the throw-away OpenClaw config for the tests (keys from the installed package's
// docs: docs/gateway/config-gateway.md, config-runtime.md, local-models.md, tools/tool-search.md).
//   node write-config.mjs FILE PORT TOKEN MOCK_MODEL_URL WORKSPACE PLUGIN_ENTRIES_JSON LOG_FILE
//   node write-config.mjs --merge-plugins FILE PLUGIN_ENTRIES_JSON   (after `plugins install`)
import { readFileSync, writeFileSync } from 'node:fs';

const args = process.argv.slice(2);
if (args[0] === '--merge-plugins') {
  const [, file, entriesJson] = args;
  const config = JSON.parse(readFileSync(file, 'utf8'));
  config.plugins ??= {};
  config.plugins.entries ??= {};
  for (const [id, entry] of Object.entries(JSON.parse(entriesJson))) {
    config.plugins.entries[id] = { ...config.plugins.entries[id], ...entry };
  }
  writeFileSync(file, JSON.stringify(config, null, 2), { mode: 0o600 });
  process.exit(0);
}

const [file, port, token, mockUrl, workspace, entriesJson, logFile] = args;
const config = {
  gateway: {
    mode: 'local',
    port: Number(port),
    bind: 'loopback',
    auth: { mode: 'token', token },
    tailscale: { mode: 'off' },
  },
  // No update checks, no feature statistics (also OPENCLAW_NO_AUTO_UPDATE=1 in the env).
  update: { checkOnStart: false, auto: { enabled: false } },
  discovery: { mdns: { mode: 'off' } },
  logging: { file: logFile },
  models: {
    mode: 'replace',
    providers: {
      mock: {
        baseUrl: mockUrl,
        apiKey: 'mock-local',
        api: 'openai-completions',
        timeoutSeconds: 60,
        models: [
          {
            id: 'mock-model',
            name: 'Mock model (moltlink tests)',
            reasoning: false,
            input: ['text'],
            cost: { input: 0, output: 0, cacheRead: 0, cacheWrite: 0 },
            contextWindow: 128000,
            maxTokens: 4096,
          },
        ],
      },
    },
  },
  agents: { defaults: { model: { primary: 'mock/mock-model' }, workspace } },
  // Plugin tools go straight into the model's tool list (no tool_search indirection).
  tools: { toolSearch: false },
  plugins: { entries: JSON.parse(entriesJson || '{}') },
};
writeFileSync(file, JSON.stringify(config, null, 2), { mode: 0o600 });
