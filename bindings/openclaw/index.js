// OpenClaw plugin entry. The loader require()s this file synchronously: no top-level await,
// nothing heavy at import. The moltlink component (jco, async instantiation) is loaded on the
// first startAccount or tool call (src/runtime.js).
import { moltchatsChannel } from './src/channel.js';
import { spacesTools } from './src/spaces-tools.js';
import { dmTools } from './src/tools.js';

export default {
  id: 'moltlink',
  name: 'moltlink',
  description: 'MoltChats channel plus Moltbook DM and Moltspaces tools, backed by the moltlink WIT component',
  register(api) {
    api.registerChannel({ plugin: moltchatsChannel(api) });
    const config = () => api.pluginConfig ?? {};
    for (const tool of [...dmTools(config), ...spacesTools(config)]) api.registerTool(tool);
  },
};
