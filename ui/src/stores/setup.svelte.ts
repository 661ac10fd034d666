// The training recipe being prepared: chosen model, preset and every hyperparameter. The model
// and data live on their own pages and are folded into the config only when it is sent.
import { defaultTrainConfig, type Preset } from '../ipc/commands';
import { toCommandError } from '../ipc/errors';
import type { CommandError, TrainConfig } from '../ipc/types';
import { DEFAULT_MODEL, toModelSpec, type ModelChoice } from './models';
import { applyPreset, normalize } from './trainConfig';

export class Setup {
  model = $state<ModelChoice>(DEFAULT_MODEL);
  preset = $state<Preset | null>(null);
  config = $state<TrainConfig | null>(null);
  error = $state<CommandError | null>(null);

  async loadPreset(preset: Preset) {
    try {
      const loaded = await defaultTrainConfig(preset);
      this.config = applyPreset(loaded, this.config);
      this.preset = preset;
      this.error = null;
    } catch (e) {
      this.error = toCommandError(e);
    }
  }

  /** The config exactly as it will be sent: current model choice and the usable files. */
  resolved(data: string[]): TrainConfig | null {
    if (!this.config) return null;
    return normalize({ ...$state.snapshot(this.config), model: toModelSpec(this.model), data });
  }
}

export const setup = new Setup();
