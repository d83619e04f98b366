// Moved to src/auth/forward-headers.ts: the agent applies the same rules when TLS ends there.
export * from '../auth/forward-headers.ts';
