//! CryptoNAS search space, ReLU counting and budgeting, training, search and export.
