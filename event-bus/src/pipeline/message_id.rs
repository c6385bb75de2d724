//! Fresh message and event ids: random (version 4) UUIDs.

/// A random (version 4) UUID in its hyphenated form, from the thread's fast generator.
///
/// `uuid::Uuid::new_v4` asks the operating system for 16 bytes on every call (a system call, about
/// a microsecond on a VM), which a publish of one event paid once. These ids only need to be
/// unique, not unpredictable: 122 bits from a generator seeded per thread from the OS (through the
/// standard library's `RandomState`) make a collision as unlikely as with the OS's bytes. Ids that
/// fence writers (claim owners) still come from the OS.
pub(crate) fn new_message_id() -> String {
    uuid::Builder::from_random_bytes(fastrand::u128(..).to_ne_bytes())
        .into_uuid()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_are_version_4_uuids_and_distinct() {
        let ids: HashSet<String> = (0..10_000).map(|_| new_message_id()).collect();
        assert_eq!(ids.len(), 10_000);
        for id in ids.iter().take(10) {
            let parsed = uuid::Uuid::parse_str(id);
            assert_eq!(parsed.map(|u| u.get_version_num()).ok(), Some(4), "{id}");
        }
    }

    #[test]
    fn threads_do_not_repeat_each_other() {
        let per_thread: Vec<Vec<String>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..4)
                .map(|_| scope.spawn(|| (0..1_000).map(|_| new_message_id()).collect()))
                .collect();
            handles.into_iter().filter_map(|h| h.join().ok()).collect()
        });
        let all: HashSet<&String> = per_thread.iter().flatten().collect();
        assert_eq!(all.len(), 4_000);
    }
}
