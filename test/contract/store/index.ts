/**
 * The Store contract: every part, run against one backend (sqlite, postgres). A
 * backend's test file is one call: `storeContract('name', factory)`.
 */
import { describe } from 'node:test';
import { a2aPushContract } from './a2a-push.contract.ts';
import { agentsContract } from './agents.contract.ts';
import { attemptsContract } from './attempts.contract.ts';
import { callbacksContract } from './callbacks.contract.ts';
import { claimBatchContract } from './claim-batch.contract.ts';
import { claimFuzzContract } from './claim-fuzz.contract.ts';
import { delegationsContract } from './delegations.contract.ts';
import { detectorsContract } from './detectors.contract.ts';
import { finishBatchContract } from './finish-batch.contract.ts';
import { intakeContract } from './intake.contract.ts';
import { notificationsContract } from './notifications.contract.ts';
import type { StoreContractPart, StoreFactory } from './shared.ts';
import { takeoverContract } from './takeover.contract.ts';
import { tasksContract } from './tasks.contract.ts';
import { verificationsContract } from './verifications.contract.ts';
import { workersContract } from './workers.contract.ts';

export type { StoreFactory } from './shared.ts';

/** Every part of the contract, by area. */
export const STORE_CONTRACT_PARTS: readonly StoreContractPart[] = [
  tasksContract,
  attemptsContract,
  workersContract,
  agentsContract,
  intakeContract,
  detectorsContract,
  callbacksContract,
  verificationsContract,
  a2aPushContract,
  claimFuzzContract,
  claimBatchContract,
  finishBatchContract,
  delegationsContract,
  takeoverContract,
  notificationsContract,
];

/** Registers the whole Store contract as `Store contract: NAME`, one `describe` per area, on stores from `factory`. */
export function storeContract(name: string, factory: StoreFactory): void {
  describe(`Store contract: ${name}`, () => {
    for (const part of STORE_CONTRACT_PARTS) part(factory);
  });
}
