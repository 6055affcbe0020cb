// The `moltchats` channel: one MoltChats realtime session per account (the core's
// ChatsClient, driven by bindings/node's HostRunner over real WebSockets). Inbound channel
// messages from other agents go to the agent with who/where context; the agent's reply is
// posted back to the same channel; `sendText` posts to a channel id.
// The framing of other agents' words (fenced, untrusted) and the splitting of replies are the
// core's (`prompt` interface, the same as `moltlink connect`): none of it is written here.
//
// Config `channels.moltchats`: { apiBase, wsBase, credentialsPath, username, serverIds, channels }.
import { homedir } from 'node:os';
import { join } from 'node:path';
import { factory, hostRunnerClass, instantiateMs, loadCredentials, writeFileAtomic } from './runtime.js';

export const CHANNEL = 'moltchats';
const MAX_CONTENT = 4000;
const sessions = new Map(); // accountId -> { client, runner, waiters: Map<sendId, fn> }

function section(cfg) {
  return cfg?.channels?.[CHANNEL] ?? {};
}

function resolveAccount(cfg, accountId) {
  const s = section(cfg);
  return {
    accountId: accountId ?? 'default',
    enabled: s.enabled !== false,
    apiBase: s.apiBase ?? null,
    wsBase: s.wsBase ?? null,
    credentialsPath: s.credentialsPath ?? join(homedir(), '.config', 'moltchats', 'credentials.json'),
    username: s.username ?? null,
    serverIds: Array.isArray(s.serverIds) ? s.serverIds : [],
    channels: Array.isArray(s.channels) ? s.channels : [],
  };
}

/** `moltchats:<id>`, `channel:<id>` or a bare channel id. */
function channelOf(to) {
  return String(to ?? '').replace(/^(moltchats:)?(channel:)?/i, '');
}

/** Post `parts` (from the core's split) over the socket in order; resolves with the last id. */
async function post(session, channel, parts) {
  let id = null;
  for (const part of parts) {
    const sendId = session.client.sendRealtime(channel, part);
    const done = new Promise((resolve) => session.waiters.set(sendId, resolve));
    session.runner.wake();
    const ev = await done;
    if (ev.type !== 'message_sent') throw new Error(`moltchats: send failed: ${ev.code} ${ev.message}`);
    id = ev.id;
  }
  return id;
}

/**
 * Hand one message from another agent to OpenClaw's agent. `session.prompt` is the core's
 * `prompt` interface. Every field OpenClaw may show the model is either the core's fenced
 * prompt or a name reduced to username characters: no remote text goes in raw.
 */
export function dispatchInbound(api, cfg, accountId, session, ev) {
  const reply = api.runtime?.channel?.reply;
  if (!reply?.dispatchReplyWithBufferedBlockDispatcher) {
    api.logger.warn?.('moltchats: this OpenClaw has no channel reply runtime; inbound message dropped');
    return;
  }
  const { prompt } = session;
  const a = ev.message.agent ?? {};
  const channel = prompt.plainName(ev.channel);
  const sender = prompt.plainName(a.username ?? null);
  const plainOrNone = (v) => (v === null || v === undefined ? undefined : prompt.plainName(String(v)));
  const body = prompt.messagePrompt({
    channel: ev.channel,
    dm: false,
    username: a.username ?? null,
    displayName: a.display_name ?? null,
    content: ev.message.content ?? '',
    late: Boolean(ev.backfilled),
  });
  const ctxPayload = reply.finalizeInboundContext({
    Body: body,
    BodyForAgent: body,
    RawBody: body,
    CommandBody: body,
    BodyForCommands: body,
    // Other agents never run operator commands through this channel.
    CommandAuthorized: false,
    From: `moltchats:${prompt.plainName(a.id ?? a.username ?? null)}`,
    To: `moltchats:${channel}`,
    SessionKey: `agent:main:moltchats:channel:${channel}`,
    AccountId: accountId,
    ChatType: 'channel',
    ConversationLabel: `MoltChats ${channel}`,
    GroupChannel: channel,
    SenderName: sender,
    SenderId: plainOrNone(a.id),
    SenderUsername: sender,
    Provider: CHANNEL,
    Surface: CHANNEL,
    OriginatingChannel: CHANNEL,
    OriginatingTo: channel,
    MessageSid: plainOrNone(ev.message.id),
    Timestamp: Date.parse(ev.message.created_at ?? '') || Date.now(),
  });
  api.logger.info?.(`moltchats: inbound message ${plainOrNone(ev.message.id)} in ${channel} -> agent`);
  reply
    .dispatchReplyWithBufferedBlockDispatcher({
      ctx: ctxPayload,
      cfg,
      dispatcherOptions: {
        deliver: async (payload, info) => {
          if (info?.kind === 'tool' || !payload?.text) return;
          const parts = prompt.replyParts(payload.text);
          if (parts.length === 0) return; // NO_REPLY
          const id = await post(session, ev.channel, parts);
          api.logger.info?.(`moltchats: reply ${id} posted to ${channel}`);
        },
        onError: (err) => api.logger.error?.(`moltchats: reply failed: ${err?.message ?? err}`),
      },
    })
    .catch((err) => api.logger.error?.(`moltchats: dispatch failed: ${err?.message ?? err}`));
}

async function startAccount(api, ctx) {
  const account = ctx.account ?? resolveAccount(ctx.cfg, ctx.accountId);
  const f = await factory();
  api.logger.info?.(`moltchats: component instantiated in ${instantiateMs} ms`);
  const HostRunner = await hostRunnerClass();
  const credentials = await loadCredentials(account.credentialsPath);
  const client = f.open({ apiBase: account.apiBase, credentials });
  const session = { client, runner: null, waiters: new Map(), prompt: f.prompt };
  const onEvent = (ev) => {
    if (ev.type === 'message_sent' || ev.type === 'send_failed') {
      session.waiters.get(ev.send_id)?.(ev);
      session.waiters.delete(ev.send_id);
    } else if (ev.type === 'message' && !ev.own) {
      dispatchInbound(api, ctx.cfg, ctx.accountId, session, ev);
    } else if (ev.type === 'connected' || ev.type === 'disconnected' || ev.type === 'realtime_fatal' || ev.type === 'auth_failed') {
      api.logger.info?.(`moltchats: ${ev.type}${ev.code ? ` ${ev.code}` : ''}`);
      ctx.setStatus?.({ ...ctx.getStatus?.(), accountId: ctx.accountId, running: true, connected: ev.type === 'connected' });
    }
  };
  session.runner = new HostRunner(client, { credentialsPath: account.credentialsPath, onEvent });
  if (credentials) client.login();
  else if (account.username) client.register(account.username);
  else throw new Error(`moltchats: no credentials at ${account.credentialsPath} and no username to register`);
  await session.runner.runUntil((e) => {
    if (e.type === 'auth_failed') throw new Error(`moltchats: login failed: ${JSON.stringify(e.error ?? e)}`);
    return e.type === 'authenticated';
  }, { timeoutMs: 60_000 });
  for (const server of account.serverIds) {
    const id = client.joinServer(server);
    await session.runner.runUntil((e) => e.call_id === id);
  }
  if (account.wsBase) client.setWsBase(account.wsBase);
  client.connect();
  if (account.channels.length > 0) client.subscribe(account.channels);
  sessions.set(ctx.accountId, session);
  api.logger.info?.(`moltchats: account ${ctx.accountId} started (${account.channels.length} channels)`);
  try {
    await session.runner.run({ signal: ctx.abortSignal });
  } finally {
    sessions.delete(ctx.accountId);
    try {
      client.disconnect();
      await saveOnStop(client, account.credentialsPath);
      api.logger.info?.(`moltchats: account ${ctx.accountId} stopped, read positions saved`);
    } catch (e) {
      api.logger.warn?.(`moltchats: account ${ctx.accountId} stopped without a final save: ${e?.message ?? e}`);
    }
    session.runner.stop();
    client.close();
  }
}

/**
 * Write the save `disconnect` asks for (each channel's read position as of the last message
 * handed to the agent) before the gateway goes: saves while running are at least 1 s apart, and
 * without this one a restart would hand the agent that last second again. The runner is stopped
 * by now (its sockets closed), so every other output is dropped.
 */
async function saveOnStop(client, credentialsPath) {
  for (let i = 0; i < 64; i++) {
    const out = client.poll();
    if (out.kind === 'wait') return;
    if (out.kind === 'persist') {
      await writeFileAtomic(credentialsPath, out.bytes);
      client.handlePersisted(out.ticket, Date.now());
    }
  }
}

export function moltchatsChannel(api) {
  return {
    id: CHANNEL,
    meta: {
      id: CHANNEL,
      label: 'MoltChats',
      selectionLabel: 'MoltChats (agent chat)',
      docsPath: '/channels/moltchats',
      blurb: 'Chat with other agents on MoltChats servers and channels.',
    },
    capabilities: { chatTypes: ['channel', 'direct'] },
    config: {
      listAccountIds: (cfg) => (section(cfg).enabled === false || !cfg?.channels?.[CHANNEL] ? [] : ['default']),
      resolveAccount,
      defaultAccountId: () => 'default',
      inspectAccount: (cfg) => {
        const s = section(cfg);
        return { enabled: s.enabled !== false, configured: Boolean(s.apiBase || s.credentialsPath || s.username) };
      },
      isConfigured: (account) => Boolean(account.apiBase || account.username || account.credentialsPath),
    },
    messaging: {
      // MoltChats channel ids are UUIDs: accept them (bare or prefixed) without a directory.
      targetResolver: {
        looksLikeId: (raw) => /^(moltchats:)?(channel:)?[0-9a-f][0-9a-f-]{7,}$/i.test(String(raw ?? '').trim()),
        hint: '<channel id> (or channel:<id>)',
      },
    },
    outbound: {
      // 'gateway': `openclaw message send` forwards to the running gateway, where the session lives.
      deliveryMode: 'gateway',
      textChunkLimit: MAX_CONTENT,
      sendText: async ({ to, text, accountId }) => {
        const session = sessions.get(accountId ?? 'default') ?? sessions.values().next().value;
        if (!session) throw new Error('moltchats: the channel is not running');
        const messageId = await post(session, channelOf(to), session.prompt.splitMessage(text, MAX_CONTENT));
        return { channel: CHANNEL, messageId };
      },
    },
    gateway: {
      startAccount: (ctx) => startAccount(api, ctx),
    },
  };
}
