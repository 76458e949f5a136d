import type { UseCase } from './usecase.js';
import { LIFECYCLE_USE_CASES } from './usecases-lifecycle.js';
import { MANAGER_USE_CASES } from './usecases-manager.js';
import { MORE_USE_CASES } from './usecases-more.js';
import { ROLLOUT_USE_CASES } from './usecases-rollout.js';

export type { OptionDecl, UseCase, UseCaseIo } from './usecase.js';

/**
 * Every command of the tool, declared once (name, options, input schema, use case, exit code):
 * the CLI reads this table to declare its commands; the HTTP API and the task queue will too.
 */
export const USE_CASES: readonly UseCase[] = [...LIFECYCLE_USE_CASES, ...MORE_USE_CASES, ...MANAGER_USE_CASES, ...ROLLOUT_USE_CASES];

/** The name of every use case, e.g. 'start' or 'registry export' (checked against the table by the unit tests). */
export type UseCaseName =
  | 'create' | 'build' | 'start' | 'start-all' | 'stop' | 'stop-all' | 'restart' | 'list' | 'logs' | 'remove' | 'demo'
  | 'register' | 'unregister' | 'cards' | 'compose' | 'routes' | 'scale' | 'push' | 'deploy'
  | 'registry export' | 'registry import' | 'registry migrate' | 'doctor'
  | 'serve' | 'token create' | 'token revoke' | 'token list' | 'token rotate-agent' | 'token revoke-agent' | 'rollout' | 'rollback';

/** The use case named `name` (command words, e.g. 'registry export'), or undefined. */
export function useCase(name: string): UseCase | undefined {
  return USE_CASES.find((u) => u.name === name);
}
