// swift-tools-version: 6.0
// Signet's libFuzzer targets: a package of its own, so that the main `swift build` and
// `swift test` neither build nor know them. `scripts/fuzz` builds it with
// `-sanitize=fuzzer,address` and runs every target; see README.md here.
//
// The main package is reached by path. SwiftPM names a path dependency after its
// directory (`signet` in a clone, `wt-fuzz` in a worktree), so the name is read from
// the directory rather than written here.
import PackageDescription

let signet = Context.packageDirectory.split(separator: "/").dropLast().last.map { String($0).lowercased() } ?? "signet"

/// One executable per target: `fuzz-<name>` from `Sources/<Module>/`.
func fuzzTarget(_ module: String, _ products: [String]) -> Target {
    .executableTarget(
        name: module,
        dependencies: ["FuzzDriver"] + products.map { .product(name: $0, package: signet) },
        swiftSettings: [.unsafeFlags(["-parse-as-library"])]
    )
}

let package = Package(
    name: "SignetFuzz",
    platforms: [.macOS(.v15)],
    dependencies: [.package(path: "..")],
    targets: [
        .target(name: "FuzzDriver"),
        fuzzTarget("FuzzAgentProtocol", ["SignetAgentProtocol", "SignetProtocolSamples"]),
        fuzzTarget("FuzzCertificateFile", ["SignetOpenSSL"]),
        fuzzTarget("FuzzMIME", ["SignetOpenSSL"]),
        fuzzTarget("FuzzMessageOpener", ["SignetMail", "SignetOpenSSL", "SignetCore"]),
        fuzzTarget("FuzzEnvelopeStream", ["SignetOpenSSL", "SignetCore"]),
        fuzzTarget("FuzzPKCS12", ["SignetOpenSSL", "SignetCore"]),
        fuzzTarget("FuzzConfig", ["SignetCore", "SignetAccessCode", "SignetAgentCore"]),
        fuzzTarget("FuzzPKCS11URI", ["SignetCore"]),
        fuzzTarget("FuzzClientRules", ["SignetCore", "SignetAgentCore", "SignetAgentProtocol"]),
    ],
    swiftLanguageModes: [.v6]
)
