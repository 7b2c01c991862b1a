//! Shared cryptographic primitives: 128-bit blocks, fixed-key AES hashes (GKWY20), CSPRNG.
