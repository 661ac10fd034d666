// One import point for the generated binding types, so views never reach into bindings/ paths.
export type { AppInfo } from './bindings/AppInfo';
export type { Chat } from './bindings/Chat';
export type { ChatMessage } from './bindings/ChatMessage';
export type { CommandError } from './bindings/CommandError';
export type { Event } from './bindings/Event';
export type { FileReport } from './bindings/FileReport';
export type { FileStats } from './bindings/FileStats';
export type { PrepareOptions } from './bindings/PrepareOptions';
export type { Report } from './bindings/Report';
export type { GenerateConfig } from './bindings/GenerateConfig';
export type { Generation } from './bindings/Generation';
export type { JobStarted } from './bindings/JobStarted';
export type { LogLevel } from './bindings/LogLevel';
export type { ModelSpec } from './bindings/ModelSpec';
export type { RunMetrics } from './bindings/RunMetrics';
export type { RunSummary } from './bindings/RunSummary';
export type { TrainConfig } from './bindings/TrainConfig';
