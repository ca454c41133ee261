// swift-tools-version: 6.0
// Signet: a smart-card-backed key store and signing agent for Linux.
//
// One target per layer (see docs/architecture.md): thin C shims for the
// system libraries, the PKCS#11 and PC/SC token layers, the command line and
// the agent. Executables stay thin; their logic lives in library targets.
import PackageDescription

let package = Package(
    name: "Signet",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "signet", targets: ["signet"]),
        .executable(name: "signet-agent", targets: ["signet-agent"]),
        .library(name: "SignetPKCS11", targets: ["SignetPKCS11"]),
        .library(name: "SignetPCSC", targets: ["SignetPCSC"]),
        .library(name: "SignetAccessCode", targets: ["SignetAccessCode"]),
        // For the fuzz targets in Fuzz/ (a separate package: `scripts/fuzz`), which reach these layers as products.
        .library(name: "SignetCore", targets: ["SignetCore"]),
        .library(name: "SignetAgentProtocol", targets: ["SignetAgentProtocol"]),
        .library(name: "SignetOpenSSL", targets: ["SignetOpenSSL"]),
        .library(name: "SignetMail", targets: ["SignetMail"]),
        .library(name: "SignetAgentCore", targets: ["SignetAgentCore"]),
        .library(name: "SignetProtocolSamples", targets: ["SignetProtocolSamples"]),
        // The PKCS#11 module onto the agent, for NSS (Thunderbird, Firefox, Chromium, Evolution), OpenSSL,
        // GnuTLS and gpgsm: libsignet-pkcs11.so (docs/pkcs11-module.md).
        .library(name: "signet-pkcs11", type: .dynamic, targets: ["SignetPKCS11Module"]),
        // Test tooling: a PKCS#11 module that wraps SoftHSM2 to count presented codes.
        .library(name: "SignetTestPKCS11Wrapper", type: .dynamic, targets: ["CTestPKCS11Wrapper"]),
    ],
    dependencies: [
        // Command-line parsing with subcommands, help and validation.
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // Structured logging for the agent and the CLI's --verbose mode.
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
    ],
    targets: [
        // MARK: C shims: only what Swift cannot import (macros, globals, casts).
        // A C target rather than a system library: libpcsclite.pc adds -pthread,
        // which SwiftPM warns about, so the headers are reached as <PCSC/...>
        // through two forwarding headers in include/.
        .target(name: "CPCSCLite", linkerSettings: [.linkedLibrary("pcsclite")]),
        .systemLibrary(
            name: "CP11Kit",
            pkgConfig: "p11-kit-1",
            providers: [.apt(["libp11-kit-dev"])]
        ),
        .systemLibrary(
            name: "COpenSSL",
            pkgConfig: "libcrypto",  // libcrypto only: Signet makes no TLS connections, and libssl cost 0.15 ms at every start
            providers: [.apt(["libssl-dev"])]
        ),
        // OpenLDAP's libldap for the directory lookups and publishing (issue 27): Signet writes no LDAP or BER itself.
        // Loaded on first use (Sources/CLDAP/loader.c), not linked: with GnuTLS and the rest it brings, it cost every
        // `signet` run 2 ms at start. Hidden visibility: the forwarders never stand in for libldap's own functions.
        .target(name: "CLDAP", cSettings: [.unsafeFlags(["-fvisibility=hidden"])]),

        // Callback trampolines (the agent-backed key) and STACK_OF macros for OpenSSL 3.
        .target(name: "CSignetCrypto", dependencies: ["COpenSSL"]),
        // prctl (variadic, so not imported): the agent makes itself undumpable at start.
        .target(name: "CSignetAgent"),

        // MARK: Layers.
        .target(name: "SignetCore"),
        .target(name: "SignetPKCS11", dependencies: ["CP11Kit", "SignetCore"]),
        .target(name: "SignetPCSC", dependencies: ["CPCSCLite", "SignetCore"]),
        .target(name: "SignetAccessCode", dependencies: ["SignetCore", "SignetPKCS11"]),
        // The agent protocol: values and bytes only, no I/O (fuzzed and tested byte for byte).
        .target(name: "SignetAgentProtocol", dependencies: ["SignetCore"]),
        // The agent's client side: connect, handshake, calls; starts the agent when none runs.
        .target(name: "SignetAgentClient", dependencies: ["SignetCore", "SignetAgentProtocol"]),
        // X.509, PKCS#10, PKCS#12 and the trust store on OpenSSL; private-key operations go to the agent.
        .target(
            name: "SignetOpenSSL",
            dependencies: ["COpenSSL", "CSignetCrypto", "SignetCore", "SignetAgentProtocol", "SignetAgentClient"]
        ),
        // Mail and enrollment workflows: verdicts of opening a message, certificate choice, own-certificate
        // memory, installing certificates and PKCS#12 files; no arguments, no printing, no token layer.
        .target(
            name: "SignetMail",
            dependencies: ["SignetCore", "SignetAgentProtocol", "SignetAgentClient", "SignetOpenSSL"]
        ),
        // Desktop set-up: finding the programs' profiles and configuration, registering the PKCS#11 module
        // (p11-kit, NSS databases through modutil, gnupg-pkcs11-scd) and undoing it; no arguments, no printing.
        .target(name: "SignetSetup", dependencies: ["SignetCore"]),
        // The audit log read back and the support bundle's parts (`signet log`, `signet report`); no arguments, no printing.
        .target(name: "SignetDiagnostics", dependencies: ["SignetCore"]),
        // The organisation's directory and CA: certificates found and published over LDAP, OCSP checks, their caches
        // and bounds; no arguments, no printing, no token layer.
        .target(name: "SignetDirectory", dependencies: ["CLDAP", "COpenSSL", "SignetCore", "SignetOpenSSL"]),
        .target(
            name: "SignetCLI",
            dependencies: [
                "SignetSetup", "SignetDiagnostics",
                // No token layer: tokens, readers, the ledger and their versions come from the agent.
                // SignetOpenSSL directly as well as through SignetMail: the commands print certificates.
                "SignetMail", "SignetCore", "SignetAgentProtocol", "SignetAgentClient", "SignetOpenSSL", "SignetDirectory",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .target(
            name: "SignetAgentCore",
            dependencies: [
                // SignetPCSC for the readers request (`signet readers`): the agent alone loads the token layers.
                "SignetCore", "SignetPKCS11", "SignetPCSC", "SignetAccessCode", "SignetAgentProtocol", "CSignetAgent",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),

        // MARK: The PKCS#11 module (a front end, like the CLI: no token layer, only the agent protocol).
        // A library and a thin shell. SignetPKCS11Front is the module's logic as an ordinary library, tested
        // in process (SignetPKCS11FrontTests, over a stand-in agent link): the agent link (connection pool,
        // calls, generations, when to start the agent), the slot table, sessions, the object cache and
        // index, the fork handling, the mechanism table, hashing, the X9.63 KDF, RFC 3394 unwrap, token
        // flags, error mapping and the operations under way. CSignetPKCS11Front gives it, and the shell,
        // the PKCS#11 types. SignetPKCS11Module is the shell, the dynamic library: one file per function
        // family that checks the caller's arguments, calls the library and fills the caller's buffers, and
        // the function list, built in Swift so the compiler checks it (module.c exports C_GetFunctionList).
        // The Swift runtime is linked in statically and only C_GetFunctionList is exported, so it loads
        // into programs with no Swift.
        .target(name: "CSignetPKCS11Front", cSettings: [.unsafeFlags(["-I/usr/include/p11-kit-1"])]),
        .target(
            name: "SignetPKCS11Front",
            dependencies: ["CSignetPKCS11Front", "COpenSSL", "SignetCore", "SignetAgentProtocol", "SignetAgentClient"],
            swiftSettings: [.unsafeFlags(["-Xcc", "-I/usr/include/p11-kit-1"])]
        ),
        .target(
            name: "CSignetPKCS11Module",
            dependencies: ["CSignetPKCS11Front"],
            exclude: ["exports.map"],
            cSettings: [.unsafeFlags(["-I/usr/include/p11-kit-1"])]
        ),
        .target(
            name: "SignetPKCS11Module",
            dependencies: [
                "CSignetPKCS11Module", "CSignetPKCS11Front", "SignetPKCS11Front", "COpenSSL", "SignetCore", "SignetAgentProtocol",
                "SignetAgentClient",
            ],
            swiftSettings: [.unsafeFlags(["-Xcc", "-I/usr/include/p11-kit-1"])],
            linkerSettings: [
                .unsafeFlags(["-static-stdlib", "-Xlinker", "--version-script=Sources/CSignetPKCS11Module/exports.map"]),
            ]
        ),

        // MARK: Executables (thin).
        .executableTarget(name: "signet", dependencies: ["SignetCLI"]),
        .executableTarget(name: "signet-agent", dependencies: ["SignetAgentCore"]),

        // MARK: Test tooling: a virtual smart card for vpcd (no physical card on a build machine).
        .target(name: "SignetVirtualCard", dependencies: ["SignetCore", "COpenSSL"]),
        .executableTarget(name: "signet-vcard", dependencies: ["SignetVirtualCard", "SignetCore", "SignetOpenSSL"]),

        // MARK: Benchmarks (not tests): the direct C loop is the baseline.
        .target(name: "CBenchPKCS11", dependencies: ["CP11Kit"], path: "Benchmarks/CBenchPKCS11"),
        .executableTarget(
            name: "signet-bench-pkcs11",
            dependencies: ["SignetPKCS11", "CBenchPKCS11", "CP11Kit"],
            path: "Benchmarks/signet-bench-pkcs11"
        ),
        .executableTarget(
            name: "signet-bench-agent",
            dependencies: ["SignetAgentClient", "SignetAgentProtocol", "SignetPKCS11", "SignetCore"],
            path: "Benchmarks/signet-bench-agent"
        ),
        // A C loop signing through any PKCS#11 module path (libsignet-pkcs11.so, SoftHSM2,
        // p11-kit-client.so) against a bare Unix-socket round trip: Benchmarks/run-module-bench.
        .executableTarget(name: "signet-bench-module", dependencies: ["CP11Kit"], path: "Benchmarks/signet-bench-module"),

        // MARK: Tests.
        .target(
            name: "SignetTestSupport",
            dependencies: [
                "SignetCore", "SignetPKCS11", "SignetPCSC", "SignetVirtualCard", "SignetAccessCode", "SignetAgentClient", "SignetAgentProtocol",
                "COpenSSL",  // CMSBuilder
            ],
            path: "Tests/SignetTestSupport"
        ),
        .testTarget(name: "SignetCoreTests", dependencies: ["SignetCore", "SignetTestSupport"]),
        // One of every request and response: the protocol tests' vectors and the protocol fuzz target's seeds.
        .target(name: "SignetProtocolSamples", dependencies: ["SignetAgentProtocol", "SignetCore"], path: "Tests/SignetProtocolSamples"),
        .testTarget(name: "SignetAgentProtocolTests", dependencies: ["SignetAgentProtocol", "SignetProtocolSamples", "SignetTestSupport"]),
        .testTarget(name: "SignetOpenSSLTests", dependencies: ["SignetOpenSSL", "SignetTestSupport", "COpenSSL"]),  // COpenSSL: FuzzRegressionTests counts BIOs
        .testTarget(
            name: "SignetAgentTests",
            dependencies: ["SignetAgentClient", "SignetAgentProtocol", "SignetPKCS11", "SignetTestSupport", "SignetOpenSSL"]
        ),
        .testTarget(name: "SignetPKCS11Tests", dependencies: ["SignetPKCS11", "SignetTestSupport"]),
        // The module's library in process: KDF and unwrap vectors, token flags, slot ids, the mechanism table,
        // and ModuleState over a stand-in agent link (paging, slot ids across refreshes and restarts).
        .testTarget(
            name: "SignetPKCS11FrontTests",
            dependencies: ["SignetPKCS11Front", "CSignetPKCS11Front", "SignetAgentProtocol", "SignetAgentClient", "SignetCore"],
            swiftSettings: [.unsafeFlags(["-Xcc", "-I/usr/include/p11-kit-1"])]
        ),
        // The agent's request groups driven in process against SoftHSM2 (no socket).
        .testTarget(
            name: "SignetAgentCoreTests",
            dependencies: ["SignetAgentCore", "SignetAgentProtocol", "SignetPKCS11", "SignetPCSC", "SignetProtocolSamples", "SignetTestSupport"]
        ),
        .testTarget(
            name: "SignetPCSCTests",
            dependencies: [
                "SignetPCSC", "SignetVirtualCard", "SignetTestSupport", "SignetAccessCode", "SignetAgentClient", "SignetAgentProtocol",
                "SignetOpenSSL", "SignetPKCS11",
            ]
        ),
        .testTarget(name: "SignetMailTests", dependencies: ["SignetMail", "SignetOpenSSL", "SignetTestSupport"]),
        // Against a real slapd and `openssl ocsp` started by the tests on loopback.
        .testTarget(name: "SignetDirectoryTests", dependencies: ["SignetDirectory", "SignetOpenSSL", "SignetCore", "SignetTestSupport"]),
        .testTarget(name: "SignetCLITests", dependencies: ["SignetCLI", "SignetMail", "SignetTestSupport"]),
        .testTarget(name: "SignetSetupTests", dependencies: ["SignetSetup", "SignetTestSupport"]),
        .testTarget(name: "SignetAgentClientTests", dependencies: ["SignetAgentClient", "SignetAgentProtocol"]),
        .testTarget(name: "SignetDiagnosticsTests", dependencies: ["SignetDiagnostics", "SignetCore", "SignetTestSupport"]),
        .testTarget(name: "UdevRulesTests", dependencies: ["SignetTestSupport"]),
        // libsignet-pkcs11.so loaded by its real consumers (pkcs11-tool, NSS, OpenSSL, GnuTLS, gpgsm, Thunderbird).
        .testTarget(name: "SignetModuleTests", dependencies: ["SignetTestSupport", "SignetAgentProtocol", "SignetCore"]),
        // A long-running PKCS#11 host in C for those tests: sensitive attributes, agent restarts, threads, ECDH values.
        .executableTarget(
            name: "signet-module-probe",
            path: "Tests/signet-module-probe",
            cSettings: [.unsafeFlags(["-I/usr/include/p11-kit-1"])]
        ),
        // A hostile PKCS#11 host in C: NULL pointers, short buffers, broken lengths, stale handles, random calls.
        .executableTarget(
            name: "signet-module-hostile",
            path: "Tests/signet-module-hostile",
            cSettings: [.unsafeFlags(["-I/usr/include/p11-kit-1"])]
        ),
        // Forks while other threads are inside the module; every child must initialise and answer (ModuleForkTests).
        .executableTarget(
            name: "signet-module-fork",
            path: "Tests/signet-module-fork",
            cSettings: [.unsafeFlags(["-I/usr/include/p11-kit-1"])]
        ),
        .target(name: "CTestPKCS11Wrapper", dependencies: ["CP11Kit"], path: "Tests/CTestPKCS11Wrapper"),
        .executableTarget(
            name: "signet-test-helper",
            dependencies: ["SignetAccessCode", "SignetPKCS11", "SignetCore"],
            path: "Tests/signet-test-helper"
        ),
        .testTarget(
            name: "SignetAccessCodeTests",
            dependencies: ["SignetAccessCode", "SignetTestSupport", "SignetVirtualCard", "SignetPCSC"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
