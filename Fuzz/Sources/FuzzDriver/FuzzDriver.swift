// The entry point every fuzz target shares. SwiftPM links an executable with its module's
// entry point renamed and `main` aliased to it (`--defsym main=<Module>_main`), so the
// `main` in libFuzzer's own archive is never used: each target's `@main` calls libFuzzer's
// driver here instead, with the target's `LLVMFuzzerTestOneInput`.
#if canImport(Glibc)
import Glibc
#endif

public typealias FuzzTestOneInput = @convention(c) (UnsafePointer<UInt8>, Int) -> Int32

@_silgen_name("LLVMFuzzerRunDriver")
private func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<Int32>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ callback: FuzzTestOneInput
) -> Int32

/// Runs libFuzzer with the process's arguments (`-max_total_time=…`, corpus directories…) and exits with its status.
public func runFuzzer(_ testOneInput: FuzzTestOneInput) -> Never {
    var argc = CommandLine.argc
    var argv = CommandLine.unsafeArgv
    exit(LLVMFuzzerRunDriver(&argc, &argv, testOneInput))
}

/// A new directory made from `template` (ending in XXXXXX), for a target's files of its own.
public func temporaryDirectory(_ template: String) -> String {
    var name = Array(template.utf8CString)
    guard mkdtemp(&name) != nil else { fatalError("cannot make \(template)") }
    return String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
