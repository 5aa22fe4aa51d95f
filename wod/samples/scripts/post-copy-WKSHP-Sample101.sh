#!/bin/sh
# post-copy hook of WKSHP-Sample101: records what it was given in the student's home (for demos and tests).
home="${WODSTUDDIR:-/student}/student${stdid}"
[ -d "$home" ] || { echo "no home $home: nothing recorded"; exit 0; }
env | sort | grep -v -e '^randompw=' -e '^accessToken=' > "$home/.wod-hook-post-copy-WKSHP-Sample101.env"
echo "post-copy-WKSHP-Sample101 done for student${stdid}"
