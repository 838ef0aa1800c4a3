"""Every limit of the ledger engine, named once (TigerStyle: put a limit on everything).

Tests exercise the store at these limits; environment overrides exist only where an
operator has a real reason to tune (segment size for small disks and for tests).
"""

from __future__ import annotations

import os

#: A segment is sealed and a new one started once it holds at least this many bytes.
SEGMENT_MAX_BYTES = int(os.environ.get("SHERATAN_SEGMENT_BYTES", 64 * 1024 * 1024))

#: The most events one save may carry; a larger save is refused before anything is written.
MAX_EVENTS_PER_SAVE = 100_000

#: The most bytes of state one event may carry (its `data` or `raw` field).
MAX_STATE_BYTES = 4 * 1024 * 1024

#: Group commit: the leader stops taking queued saves once a commit holds this many lines.
MAX_LINES_PER_COMMIT = 200_000

#: Reads pull this many bytes from a segment in one pread (more only for a longer line).
READ_CHUNK_BYTES = 4 * 1024 * 1024

#: The most characters of a stream id, a topic or a tracked application's name.
MAX_NAME_CHARS = 1024

#: The longest line the ledger may hold; a longer run of bytes without a newline is corrupt.
#: It covers the longest line a save within the limits above produces: the state in base64
#: (``raw``), three names JSON-escaped at up to 6 bytes a character, and the fixed keys.
MAX_LINE_BYTES = 8 * 1024 * 1024
assert MAX_LINE_BYTES >= 4 * ((MAX_STATE_BYTES + 2) // 3) + 3 * 6 * MAX_NAME_CHARS + 1024

#: The sidecar index is rewritten after this many new events, so that opening a large log
#: never rescans more than this tail.
SIDECAR_EVERY_EVENTS = 250_000

#: Width of the zero-padded first position in segment file names.
SEGMENT_NAME_DIGITS = 20

#: The most followers one log wakes after each commit (one registry file and one datagram
#: each); a follower past it is refused when it registers.
MAX_FOLLOWERS_PER_LOG = 256

#: A follower without abstract sockets (not Linux) looks at the log's position this often.
WAKE_FALLBACK_STEP_S = 0.05
