import { InitialSchema1796025606325 } from './1796025606325-InitialSchema.js';
import { AddPairingSessions1796027222060 } from './1796027222060-AddPairingSessions.js';
import { AddPartnerNotifications1796028909537 } from './1796028909537-AddPartnerNotifications.js';
import { AddKeyListReconciliation1796035706813 } from './1796035706813-AddKeyListReconciliation.js';
import { AddParallelAuditChains1796036293386 } from './1796036293386-AddParallelAuditChains.js';
import { AddAuditChainHeads1796042900000 } from './1796042900000-AddAuditChainHeads.js';

/** Every migration in order; listed explicitly so sources and dist/ see the same list. */
export const MIGRATIONS = [
  InitialSchema1796025606325,
  AddPairingSessions1796027222060,
  AddPartnerNotifications1796028909537,
  AddKeyListReconciliation1796035706813,
  AddParallelAuditChains1796036293386,
  AddAuditChainHeads1796042900000,
];
