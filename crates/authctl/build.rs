//! Links `authctl` so that it starts fast on Linux with glibc.
//!
//! Most of what a short `authctl token` costs is the start of the process
//! (BENCHMARKS.md, section 5), so two things are changed for the `authctl`
//! binary only; the libraries (`auth-core` and the rest) are unaffected.
//!
//! 1. **A position-dependent executable** (`-no-pie`). As a
//!    position-independent one, the dynamic loader must patch about 13,000
//!    pointers in the binary's read-only-after-relocation data at every
//!    start, which copies about 50 pages (each fault costs microseconds on
//!    a virtual machine). A position-dependent executable has those
//!    pointers fixed at link time. What this costs: the executable's own
//!    code and data load at a fixed address, so address-space layout
//!    randomization covers the stack, the heap and the shared libraries,
//!    but not the executable's image (Go builds its Linux executables the
//!    same way by default). `AUTHCTL_PIE=1` keeps the default
//!    position-independent executable.
//! 2. **GCC's unwinder linked in** (`libgcc_eh.a`, what `gcc -static-libgcc`
//!    links) instead of loading `libgcc_s.so.1`, which Rust's standard
//!    library asks for only for unwinding panics. Loading that one library
//!    costs about 0.13 ms per process on a virtual machine, more than the
//!    rest of `authctl token`'s own work. The unwinder is the same code
//!    (about 50 KB, from the same GCC), so panics unwind and print
//!    backtraces as before; this is the supported configuration of every
//!    C++ program built with `-static-libgcc`. `AUTHCTL_SHARED_LIBGCC=1`
//!    keeps the shared library. If the C compiler cannot name its
//!    `libgcc_eh.a` (another toolchain), the shared library is used.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=AUTHCTL_PIE");
    println!("cargo:rerun-if-env-changed=AUTHCTL_SHARED_LIBGCC");
    println!("cargo:rerun-if-env-changed=CC");
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    let glibc_linux = var("CARGO_CFG_TARGET_OS") == "linux" && var("CARGO_CFG_TARGET_ENV") == "gnu";
    // A static build links everything statically already; leave it alone.
    let static_crt = var("CARGO_CFG_TARGET_FEATURE")
        .split(',')
        .any(|feature| feature == "crt-static");
    if !glibc_linux || static_crt {
        return;
    }
    if var("AUTHCTL_PIE") != "1" {
        println!("cargo:rustc-link-arg-bin=authctl=-no-pie");
    }
    // Only for a native build: a cross build's C compiler is another one.
    if var("AUTHCTL_SHARED_LIBGCC") != "1"
        && var("TARGET") == var("HOST")
        && let Some(dir) = libgcc_eh_dir()
    {
        // A native library of this crate comes before the standard
        // library's own (`-lgcc_s`) on the link line, so the unwinder's
        // symbols are defined before `libgcc_s` is considered, and the
        // linker (`--as-needed`) leaves it out.
        println!("cargo:rustc-link-search=native={}", dir.display());
        println!("cargo:rustc-link-lib=static=gcc_eh");
    }
}

/// The directory of the C compiler's `libgcc_eh.a`, if it has one.
fn libgcc_eh_dir() -> Option<PathBuf> {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_owned());
    let output = Command::new(cc)
        .arg("-print-file-name=libgcc_eh.a")
        .output()
        .ok()?;
    let path = PathBuf::from(String::from_utf8(output.stdout).ok()?.trim());
    // Without one, the compiler prints the bare name back.
    if output.status.success() && path.is_absolute() && path.is_file() {
        path.parent().map(PathBuf::from)
    } else {
        None
    }
}
