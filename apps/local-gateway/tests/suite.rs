//! The local gateway's binary and modules, one test binary; each module is a file beside this one.

mod lambda_emulator;
mod termination;
mod tidy_modules;
