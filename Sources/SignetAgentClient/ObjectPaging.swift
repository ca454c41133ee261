import SignetAgentProtocol
import SignetCore

/// Reading an object listing a page at a time (`listObjectPage`), for every client of the agent: the
/// command line's `Inventory` and the PKCS#11 module. An agent that misbehaves (a `next` that never
/// ends, repeats or goes back, empty pages, answers slower and slower) ends the listing with an error
/// instead of keeping the caller, and the program it runs in, looping.
public enum ObjectPaging {
    /// The most pages one listing may take. A page holds up to 64 KiB of entries; a real token fills a
    /// few, and 4096 pages is 256 MiB of listing, far past any token.
    public static let pageLimit = 4096

    /// Every object of a listing, `fetch`ing the page that starts at each `next` in turn.
    /// - Parameters:
    ///   - seconds: the whole listing's time bound (each page has its own in `fetch`).
    ///   - fetch: one page, from its start index.
    ///   - failing: the error for a listing that makes no progress, has more than `pageLimit` pages,
    ///     pages whose values do not match their entries, or takes longer than `seconds`; given what went wrong.
    /// - Throws: what `fetch` throws, or `failing`'s error.
    public static func collect<E: Error>(seconds: Double? = nil, pageLimit: Int = ObjectPaging.pageLimit,
                                         fetch: (_ start: UInt32) throws(E) -> ObjectPage,
                                         failing: (String) -> E) throws(E) -> (entries: [ObjectEntry], values: [[UInt8]]) {
        let deadline = seconds.map { MonotonicClock.seconds() + $0 }
        var entries: [ObjectEntry] = [], values: [[UInt8]] = []
        var start: UInt32 = 0
        for _ in 0..<pageLimit {
            if let deadline, MonotonicClock.seconds() > deadline { throw failing("the object listing took longer than \(Int(seconds ?? 0)) s") }
            let page = try fetch(start)
            guard page.values.isEmpty || page.values.count == page.objects.count else {
                throw failing("a page of \(page.objects.count) objects came with \(page.values.count) values")
            }
            entries += page.objects
            values += page.values.isEmpty ? Array(repeating: [], count: page.objects.count) : page.values
            guard let next = page.next else { return (entries, values) }
            // No progress: a page that is empty, or a next that repeats or goes back, would loop for ever.
            guard next > start, !page.objects.isEmpty else { throw failing("the object listing made no progress (page \(start), next \(next))") }
            start = next
        }
        throw failing("the object listing went on past \(pageLimit) pages")
    }
}
