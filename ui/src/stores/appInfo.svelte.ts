// Version, compute device and folders, loaded once at start-up.
import { appInfo } from '../ipc/commands';
import { toCommandError } from '../ipc/errors';
import type { AppInfo, CommandError } from '../ipc/types';

class AppInfoStore {
  info = $state<AppInfo | null>(null);
  error = $state<CommandError | null>(null);

  async load() {
    try {
      this.info = await appInfo();
      this.error = null;
    } catch (e) {
      this.error = toCommandError(e);
    }
  }
}

export const app = new AppInfoStore();
