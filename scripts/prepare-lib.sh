# Sourced by the prepare scripts (after they define die): what they share about their input.

# What an input file is (absolute path, size, mtime): a replaced or corrected file reads differently.
input_identity() {
  local f
  for f; do
    f=$(realpath -m -- "$f")
    if [ -f "$f" ]; then stat -L -c '%n size=%s mtime=%Y' -- "$f"; else echo "$f missing"; fi
  done
}

# refuse_other_options STAMP OPTIONS OUT_FLAG: stop when OUT was made with other options or input
# (STAMP records them); the message names the recorded lines that differ.
refuse_other_options() {
  local stamp=$1 options=$2 flag=$3 was
  [ -f "$stamp" ] && [ "$(cat "$stamp")" != "$options" ] || return 0
  was=$(awk 'NR == FNR { now[$0]; next } !($0 in now) { printf "%s%s", sep, $0; sep = "; " }' \
          <(echo "$options") "$stamp")
  die "$(dirname "$stamp") was prepared with other options (${was:-$(paste -sd ' ' "$stamp")}); use another $flag or delete it"
}

# download URL FILE FIX: fetch URL into FILE (through FILE.part) unless FILE is there already;
# FIX tells the user what to do when it fails.
download() {
  local url=$1 file=$2 fix=$3
  [ -s "$file" ] && return 0
  mkdir -p "$(dirname "$file")"
  echo "[$(basename "$0" .sh)] downloading $url"
  curl -fsSL --retry 3 -o "$file.part" "$url" || die "could not download $url (the host may have moved): $fix"
  mv "$file.part" "$file"
}
