import Foundation

/// A minimal HTTP/1.0 file server on 127.0.0.1 (a CA's CRL distribution point for tests): answers
/// `GET /name` with the file `name` from `directory`, or 404, or a redirect set with `redirect(_:to:)`.
/// Runs on its own thread until `stop()`.
public final class LocalHTTPServer: @unchecked Sendable {
    public let port: UInt16
    private let listener: Int32
    private let directory: String
    private let lock = NSLock()
    private var requests: [String] = []
    private var redirects: [String: String] = [:]

    public init(directory: String) throws {
        self.directory = directory
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard listener >= 0 else { throw TestFailure("socket failed") }
        self.listener = listener
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard bound == 0, listen(listener, 16) == 0 else { throw TestFailure("bind/listen failed") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) } }
        self.port = UInt16(bigEndian: address.sin_port)
        let thread = Thread { [self] in serve() }
        thread.start()
    }

    /// The paths requested so far.
    public var requested: [String] { lock.withLock { requests } }

    public func url(_ name: String) -> String { "http://127.0.0.1:\(port)/\(name)" }

    /// From now on, answers `GET /name` with `302 Found` and `Location: location`.
    public func redirect(_ name: String, to location: String) { lock.withLock { redirects[name] = location } }

    /// Stops accepting connections (later requests are refused).
    public func stop() { shutdown(listener, Int32(SHUT_RDWR)); close(listener) }

    private func serve() {
        while true {
            let connection = accept(listener, nil, nil)
            guard connection >= 0 else { return }
            var request: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 4096)
            while !request.contains(0x0A) && request.count < 8192 {
                let got = read(connection, &buffer, buffer.count)
                if got <= 0 { break }
                request += buffer[..<got]
            }
            let line = String(decoding: request.prefix { $0 != 0x0D && $0 != 0x0A }, as: UTF8.self).split(separator: " ")
            let path = line.count > 1 ? String(line[1]) : "/"
            lock.withLock { requests.append(path) }
            let name = path.split(separator: "/").last.map(String.init) ?? ""
            let response: [UInt8]
            if let location = lock.withLock({ redirects[name] }) {
                response = Array("HTTP/1.0 302 Found\r\nLocation: \(location)\r\nContent-Length: 0\r\n\r\n".utf8)
            } else if !name.isEmpty, !name.hasPrefix("."), let body = FileManager.default.contents(atPath: directory + "/" + name) {
                response = Array("HTTP/1.0 200 OK\r\nContent-Type: application/pkix-crl\r\nContent-Length: \(body.count)\r\n\r\n".utf8) + body
            } else {
                response = Array("HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n".utf8)
            }
            response.withUnsafeBytes { raw in
                var offset = 0
                while offset < raw.count {
                    let sent = write(connection, raw.baseAddress! + offset, raw.count - offset)
                    if sent <= 0 { break }
                    offset += sent
                }
            }
            close(connection)
        }
    }
}
