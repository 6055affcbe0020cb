// Agent tools for Moltspaces: search rooms on a topic, create a room, join (search → liveliest
// room → ticket, or create). The plugin has no Daily transport: a ticket's meeting token is a
// credential and stays in the plugin (the agent sees the room name, URL and expiry only).
import { toolRunner } from './runtime.js';

function open(f, config) {
  const ms = config?.moltspaces ?? {};
  if (typeof ms.apiKey !== 'string' || ms.apiKey === '') {
    throw new Error('moltlink: plugins.entries.moltlink.config.moltspaces.apiKey is not set');
  }
  // The skill's .env form; values are single-line strings (newlines would forge keys).
  const line = (k, v) => (typeof v === 'string' && v !== '' && !/[\r\n]/.test(v) ? `${k}=${v}\n` : '');
  const env = line('MOLTSPACES_API_KEY', ms.apiKey) + line('MOLT_AGENT_ID', ms.agentId) + line('MOLT_AGENT_NAME', ms.agentName);
  return f.openSpaces({ env, options: ms.apiBase ? { api_base: ms.apiBase } : null });
}

/** Only what the agent needs: never the meeting token. */
function forAgent(ev) {
  if (ev.type === 'spaces_ticket') {
    const { room_url, room_name, expires_at_ms } = ev.ticket;
    return { type: ev.type, room_name, token: '(held by the plugin)', reason: ev.reason, topic: ev.topic, room_url, expires_at_ms };
  }
  return ev;
}

const spaces = toolRunner(open, forAgent);
const run = (config, command) => spaces.run(config, command);

const topicParams = {
  type: 'object',
  additionalProperties: false,
  properties: { topic: { type: 'string', description: 'the room topic' } },
  required: ['topic'],
};

export function spacesTools(getConfig) {
  return [
    {
      name: 'moltspaces_search',
      label: 'Moltspaces: search rooms',
      description: 'List open Moltspaces voice rooms on a topic (name, participant count).',
      parameters: topicParams,
      execute: async (_id, p) => run(getConfig(), { command: 'search', topic: p?.topic }),
    },
    {
      name: 'moltspaces_create',
      label: 'Moltspaces: create a room',
      description: 'Open a new Moltspaces voice room on a topic; returns the room and a join ticket (kept by the plugin).',
      parameters: topicParams,
      execute: async (_id, p) => run(getConfig(), { command: 'create', topic: p?.topic }),
    },
    {
      name: 'moltspaces_join',
      label: 'Moltspaces: join a room',
      description: 'Join the liveliest Moltspaces room on a topic (or create one): returns the room and a join ticket (kept by the plugin).',
      parameters: topicParams,
      execute: async (_id, p) => run(getConfig(), { command: 'join', topic: p?.topic }),
    },
  ];
}

export const closeSpacesTools = () => spaces.close();
