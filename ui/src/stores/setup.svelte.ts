// The training recipe being prepared: chosen model, preset and every hyperparameter. The model
// and data live on their own pages and are folded into the config only when it is sent. Presets
// follow the data: once the health check suggests lengths, a preset never trains longer than that.
import { defaultTrainConfig, type Preset } from '../ipc/commands';
import { toCommandError } from '../ipc/errors';
import type { CommandError, TrainConfig } from '../ipc/types';
import { DEFAULT_MODEL, toModelSpec, type ModelChoice } from './models';
import { applySettings, loadTraining, rememberTraining, settingsOf } from './remember';
import { applyPreset, fitSteps, normalize, PRESETS, suggestedSteps, type PresetLength, type Suggestions } from './trainConfig';

export class Setup {
  model = $state<ModelChoice>(DEFAULT_MODEL);
  preset = $state<Preset | null>(null);
  config = $state<TrainConfig | null>(null);
  error = $state<CommandError | null>(null);
  /** The engine's presets as loaded, so the picker can say how long each one trains. */
  presets = $state<Partial<Record<Preset, TrainConfig>>>({});
  /** What the current data supports, from the health check; null before any report. */
  suggestions = $state<Suggestions | null>(null);
  /**
   * The steps this store itself last wrote from a preset. While the config still holds them the
   * user has not typed their own, so a new report may re-fit them; any other value is theirs.
   */
  fittedSteps = $state<number | null>(null);
  /**
   * The model (its ModelSpec as JSON) for which the Model page turned "Save memory" on because
   * only then did it fit; a user who turns it off again for that model keeps it off.
   */
  savedMemoryFor = $state<string | null>(null);
  /** Set once the remembered settings are back; saving before then would overwrite them. */
  restored = $state(false);

  /** A preset's length for the current data, or null until that preset has loaded. */
  presetLength(p: Preset): PresetLength | null {
    const loaded = this.presets[p];
    if (!loaded) return null;
    return fitSteps(loaded.steps, this.suggestions ? suggestedSteps(this.suggestions, p) : null);
  }

  async #fetch(p: Preset): Promise<TrainConfig> {
    const cached = this.presets[p];
    if (cached) return $state.snapshot(cached) as TrainConfig;
    const loaded = await defaultTrainConfig(p);
    // A copy: edits to the config being prepared must never leak into the cached preset.
    this.presets[p] = structuredClone(loaded);
    return loaded;
  }

  /** Applies `chosen`, then loads the other presets too, so the picker can show their lengths. */
  async loadPresets(chosen: Preset) {
    await this.loadPreset(chosen);
    await Promise.all(
      PRESETS.filter((p) => p.id !== chosen).map((p) =>
        this.#fetch(p.id).catch(() => {
          // Only the picker's length hint is missing; picking the preset tries again.
        }),
      ),
    );
  }

  async loadPreset(preset: Preset) {
    try {
      const loaded = await this.#fetch(preset);
      const steps = this.presetLength(preset)?.steps ?? loaded.steps;
      this.config = applyPreset({ ...loaded, steps }, this.config);
      this.preset = preset;
      this.fittedSteps = steps;
      this.error = null;
    } catch (e) {
      this.error = toCommandError(e);
    }
  }

  /** Launch: the remembered preset and settings, or Quick with its defaults on a first run. */
  async restore() {
    const saved = loadTraining();
    await this.loadPresets(saved?.preset ?? 'quick');
    if (saved && this.config) {
      const presetSteps = this.fittedSteps;
      this.config = applySettings(this.config, saved.settings);
      // Steps that are the preset's (fitted then or now) keep following the data; typed ones stay.
      const steps = this.config.steps;
      this.fittedSteps = steps !== null && (steps === presetSteps || steps === saved.fittedSteps) ? steps : null;
    }
    // A report may have come in while the presets loaded.
    if (this.suggestions) this.fitToData(this.suggestions);
    this.restored = true;
  }

  /** Writes the preset and settings for the next launch (after `restore`, never before). */
  remember() {
    if (!this.restored || !this.config) return;
    const config = $state.snapshot(this.config) as TrainConfig;
    rememberTraining({ preset: this.preset, settings: settingsOf(config), fittedSteps: this.fittedSteps });
  }

  /** New suggestions from the health check; re-fits the preset's steps unless the user set their own. */
  fitToData(suggestions: Suggestions | null) {
    this.suggestions = suggestions;
    const c = this.config;
    if (!c || !this.preset || c.steps === null || c.steps !== this.fittedSteps) return;
    const steps = this.presetLength(this.preset)?.steps;
    if (steps == null) return;
    c.steps = steps;
    this.fittedSteps = steps;
  }

  /** A suggested length the user chose: that preset's settings with exactly these steps. */
  async useSuggestion(preset: Preset, steps: number) {
    await this.loadPreset(preset);
    if (!this.config || this.preset !== preset) return;
    this.config.steps = steps;
    this.config.epochs = null;
    this.fittedSteps = null;
  }

  /** The config exactly as it will be sent: current model choice and the usable files. */
  resolved(data: string[]): TrainConfig | null {
    if (!this.config) return null;
    return normalize({ ...$state.snapshot(this.config), model: toModelSpec(this.model), data });
  }
}

export const setup = new Setup();
