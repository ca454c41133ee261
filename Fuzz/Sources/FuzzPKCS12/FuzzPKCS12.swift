// PKCS#12 files as `signet import` reads them, with a wrong password: everything before
// and at the MAC check (size, structure, iteration-count caps, the encryption description).
import FuzzDriver
import SignetCore
import SignetOpenSSL

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPKCS12(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let password = SecretBytes(copying: Array("not the password".utf8))
    do {
        _ = try PKCS12File.open(bytes, password: password)
    } catch {
        _ = error.description
    }
    return 0
}

@main
enum Main {
    static func main() { runFuzzer(fuzzPKCS12) }
}
