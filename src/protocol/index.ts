// Public API of the protocol core (PROTOCOL.md §4, §6): pure, no framework, no I/O.
// SPAKE2+ pairing (§3) and certificate extensions live in their own modules.
export * from './errors.js';
export * from './bytes.js';
export * from './tlv.js';
export * from './apdu.js';
export * from './ecp.js';
export * from './crypto/aes.js';
export * from './crypto/cmac.js';
export * from './crypto/constant-time.js';
export * from './crypto/kdf.js';
export * from './crypto/p256.js';
export * from './identifiers.js';
export * from './transaction.js';
export * from './secure-channel.js';
export * from './mailbox.js';
export * from './entitlements.js';
