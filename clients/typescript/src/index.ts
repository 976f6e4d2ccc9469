export { ClaudeStudioClient } from './client.js';
export type { ClientEvents, ClientOptions } from './client.js';
export { CommandStream } from './commands.js';
export type { ExecuteOptions, StartOptions } from './commands.js';
export type { EventsOptions } from './events.js';
export type { FileData } from './files.js';
export { Watch } from './live.js';
export type { AttachOptions, AttachResult, WatchOptions } from './live.js';
export type { OutputCallbacks } from './output.js';
export {
  AuthenticationError,
  ClaudeStudioError,
  CommandFailedError,
  CommandNotFoundError,
  ConnectionError,
  ContainerCreationError,
  ContainerNotFoundError,
  DockerDaemonError,
  FileNotFoundError,
  MessageTooLarge,
  PreviewUnavailableError,
  RateLimitError,
  ServiceUnavailableError,
  TimeoutError,
  ValidationError,
  errorClasses,
  errorFromBody,
} from './errors.js';
export type { ErrorDetails, RateLimitDetails } from './errors.js';
export type { RateLimitInfo } from './http.js';
export type { ReconnectOptions, TokenTransport, WebSocketConstructor, WebSocketLike } from './socket.js';
export type * from './types.js';
