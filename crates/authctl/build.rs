//! Links `authctl` as a position-dependent executable on Linux.
//!
//! Most of what a short `authctl token` costs is the start of the process,
//! and most of that is page faults: as a position-independent executable,
//! the dynamic loader must patch about 13,000 pointers in the binary's
//! read-only-after-relocation data at every start, which copies about 50
//! pages (each fault costs microseconds on a virtual machine). A
//! position-dependent executable has those pointers fixed at link time.
//! See BENCHMARKS.md, section 5.
//!
//! What this costs: the executable's own code and data load at a fixed
//! address, so address-space layout randomization covers the stack, the
//! heap and the shared libraries, but not the executable's image (Go
//! builds its Linux executables the same way by default). The libraries
//! (`auth-core` and the rest) are unaffected: this applies to the
//! `authctl` binary only. Set `AUTHCTL_PIE=1` when building to keep the
//! default position-independent executable.

fn main() {
    println!("cargo:rerun-if-env-changed=AUTHCTL_PIE");
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    let linux = var("CARGO_CFG_TARGET_OS") == "linux";
    // A static build links with `-static-pie`; leave that alone.
    let static_crt = var("CARGO_CFG_TARGET_FEATURE")
        .split(',')
        .any(|feature| feature == "crt-static");
    let keep_pie = var("AUTHCTL_PIE") == "1";
    if linux && !static_crt && !keep_pie {
        println!("cargo:rustc-link-arg-bin=authctl=-no-pie");
    }
}
