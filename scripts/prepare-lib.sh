# shellcheck shell=bash
# Sourced by the prepare scripts and distill-sequence-level.sh (after they define die): what they share about their input.

# What an input file is: its absolute path, size and, up to 64 MiB, its content's sha256 (a fresh
# copy of the same file reads the same), else its mtime (hashing gigabytes would take minutes).
# A replaced or corrected file reads differently.
input_identity() {
  local f size
  for f; do
    f=$(realpath -m -- "$f")
    if [ ! -f "$f" ]; then echo "$f missing"; continue; fi
    size=$(stat -L -c %s -- "$f")
    if [ "$size" -le $((64 << 20)) ]; then
      echo "$f size=$size sha256=$(sha256sum < "$f" | cut -d' ' -f1)"
    else
      stat -L -c '%n size=%s mtime=%Y' -- "$f"
    fi
  done
}

# refuse_other_options STAMP OPTIONS OUT_FLAG: stop when OUT was made with other options or input
# (STAMP records them: the settings line, then the input's identity); the message names the
# recorded lines that differ. A stamp written before the input was recorded holds the settings
# line alone: OUT is taken as made from this input, and the stamp gets it.
refuse_other_options() {
  local stamp=$1 options=$2 flag=$3 was
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "${options%%$'\n'*}" ]; then echo "$options" > "$stamp"; fi
  [ -f "$stamp" ] && [ "$(cat "$stamp")" != "$options" ] || return 0
  was=$(awk 'NR == FNR { now[$0]; next } !($0 in now) { printf "%s%s", sep, $0; sep = "; " }' \
          <(echo "$options") "$stamp")
  die "$(dirname "$stamp") was prepared with other options (${was:-$(paste -sd ' ' "$stamp")}); use another $flag or delete it"
}

# download URL FILE FIX [CHECK ARGS...]: fetch URL into FILE (through FILE.part) unless FILE is there
# already; FIX tells the user what to do when it fails. With CHECK, the download is kept only when
# CHECK ARGS... FILE.part succeeds (else it prints what is wrong): a cut-off or wrong file is not
# taken as done, and the next run fetches it again.
download() {
  local url=$1 file=$2 fix=$3 problem
  shift 3
  [ -s "$file" ] && return 0
  mkdir -p "$(dirname "$file")"
  echo "[$(basename "$0" .sh)] downloading $url"
  curl -fsSL --retry 3 -o "$file.part" "$url" || die "could not download $url (the host may have moved): $fix"
  if [ $# -gt 0 ] && ! problem=$("$@" "$file.part"); then
    rm -f "$file.part"
    die "downloaded $url but it $problem, so it was not kept: $fix"
  fi
  mv "$file.part" "$file"
}
