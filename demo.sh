#!/usr/bin/env bash
# sealmail demo: build, make a demo vault with one user and a software token, deliver a
# few sample messages, and run sealmail-imapd in the foreground on 127.0.0.1
# (IMAP + STARTTLS on 1143, IMAPS on 1993). Ctrl-C stops it.
#
#   ./demo.sh            reuse ./demo/ if it is complete, else create it
#   ./demo.sh --reset    throw ./demo/ away and start over
set -euo pipefail
cd "$(dirname "$0")"

DEMO=demo
CONF=$DEMO/sealmail.conf
TOKEN=$DEMO/demo.token
USER_NAME=demo
PASSPHRASE='correct horse battery staple'
IMAP_PORT=1143
IMAPS_PORT=1993
BUILD=build
VAULT=$BUILD/vault/sealmail-vault
KEYMGR=$BUILD/keymgr/sealmail-keymgr
IMAPD=$BUILD/imapd/sealmail-imapd
RUN_USER=sealmail

say() { printf '\033[1m== %s\033[0m\n' "$*"; }

# 1. Packages (Debian): installs only what is missing; needs root or sudo for that.
if [ -f .ci/install-deps.sh ]; then
  bash .ci/install-deps.sh
fi

# 2. Build.
if [ ! -f $BUILD/build.ninja ]; then
  say "configuring the build in $BUILD/"
  meson setup $BUILD >/dev/null
fi
say "building"
meson compile -C $BUILD >/dev/null

# 3. The demo vault.
if [ "${1:-}" = "--reset" ]; then
  rm -rf "$DEMO"
fi
if [ -f "$CONF" ] && [ -f "$TOKEN" ] && [ -f "$DEMO/.complete" ] &&
   "$KEYMGR" -c "$CONF" user list 2>/dev/null | grep -q "$USER_NAME"; then
  say "reusing the demo vault in $DEMO/ (./demo.sh --reset starts over)"
else
  say "creating a fresh demo vault in $DEMO/"
  rm -rf "$DEMO"
  "$VAULT" init "$DEMO" >/dev/null
  # Ports for the demo; fast-enough Argon2id (the OWASP minimum is 19 MiB, t=2).
  sed -i -E \
    -e "s|^#? *imap_listen *=.*|imap_listen = 127.0.0.1:$IMAP_PORT|" \
    -e "s|^#? *imaps_listen *=.*|imaps_listen = 127.0.0.1:$IMAPS_PORT|" \
    -e 's|^#? *lmtp_listen *=.*|lmtp_listen =|' \
    -e 's|^#? *argon2_memory *=.*|argon2_memory = 65536|' \
    -e 's|^#? *argon2_passes *=.*|argon2_passes = 2|' \
    "$CONF"
  say "creating user '$USER_NAME' with a software token ($TOKEN)"
  "$KEYMGR" -c "$CONF" user add "$USER_NAME" --passphrase-fd 3 --soft-token "$TOKEN" \
    --label demo 3<<<"$PASSPHRASE"

  say "delivering sample messages"
  deliver() { sed 's/$/\r/' | "$VAULT" -c "$CONF" deliver "$USER_NAME" >/dev/null; }
  deliver <<'EOF'
From: Alice Example <alice@example.org>
To: demo@example.org
Subject: Welcome to sealmail
Date: Mon, 02 Mar 2026 09:00:00 +0000
Message-ID: <welcome@example.org>
Content-Type: text/plain; charset=utf-8

Hello!

This message is stored sealed: its body, headers and flags are encrypted
under keys that only your passphrase plus your token can open.
EOF
  deliver <<'EOF'
From: Bob Example <bob@example.org>
To: demo@example.org
Subject: Re: Welcome to sealmail
Date: Mon, 02 Mar 2026 09:30:00 +0000
Message-ID: <reply1@example.org>
In-Reply-To: <welcome@example.org>
References: <welcome@example.org>
Content-Type: text/plain; charset=us-ascii

> This message is stored sealed

And replies thread like any other mail.
EOF
  deliver <<'EOF'
From: Newsletter <news@example.net>
To: demo@example.org
Subject: =?UTF-8?Q?Caf=C3=A9_news_=E2=98=95?=
Date: Tue, 03 Mar 2026 07:15:00 +0100
Message-ID: <news-42@example.net>
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary="alt"

--alt
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

Caf=C3=A9 news: the espresso machine is fixed.
--alt
Content-Type: text/html; charset=utf-8

<html><body><p>Caf&eacute; news: the <b>espresso machine</b> is fixed.</p></body></html>
--alt--
EOF
  deliver <<'EOF'
From: Carol Example <carol@example.org>
To: demo@example.org
Subject: The report, with an attachment
Date: Wed, 04 Mar 2026 16:45:00 +0000
Message-ID: <report@example.org>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="mix"

--mix
Content-Type: text/plain; charset=us-ascii

The figures are attached.
--mix
Content-Type: text/csv; name="figures.csv"
Content-Disposition: attachment; filename="figures.csv"
Content-Transfer-Encoding: base64

cXVhcnRlcixyZXZlbnVlCjEsMTAwCjIsMTIwCjMsMTQ1CjQsMTcwCg==
--mix--
EOF
  deliver <<'EOF'
From: Security Team <security@example.org>
To: demo@example.org
Subject: Your token was enrolled
Date: Thu, 05 Mar 2026 11:00:00 +0000
Message-ID: <token@example.org>
Content-Type: text/plain; charset=us-ascii

A software token was enrolled for this account. A real deployment uses a
YubiKey: touch it and it types the one-time password for you.
EOF
  touch "$DEMO/.complete"
fi

# 4. Privileges: as root, the server binds and then runs as an unprivileged user.
if [ "$(id -u)" -eq 0 ]; then
  if ! getent passwd "$RUN_USER" >/dev/null; then
    useradd --system --no-create-home --shell /usr/sbin/nologin "$RUN_USER"
  fi
  sed -i -E "s|^#? *run_user *=.*|run_user = $RUN_USER|" "$CONF"
  grep -q "^run_user" "$CONF" || echo "run_user = $RUN_USER" >> "$CONF"
  chown -R "$RUN_USER": "$DEMO"
fi

"$IMAPD" -c "$CONF" --check-config >/dev/null

OTP_CMD="$KEYMGR -c $CONF token otp $TOKEN"
cat <<EOF

  sealmail demo server
  --------------------
  host        127.0.0.1
  ports       $IMAPS_PORT (IMAPS, implicit TLS)   $IMAP_PORT (IMAP, STARTTLS)
  certificate self-signed (accept it in your client)
  user        $USER_NAME
  passphrase  $PASSPHRASE
  password    the passphrase immediately followed by a fresh one-time password:
                passphrase + OTP, no space between them
  next OTP    $OTP_CMD
              (a YubiKey would type this when touched; each OTP works once)
  reconnects  for 8 hours after a full login the passphrase alone is accepted
              (the unlock window); after that, passphrase + OTP again

  Try it (in another terminal, from $(pwd)):
    python3 -c "import imaplib,ssl,subprocess; otp=subprocess.check_output('$OTP_CMD'.split(),text=True).strip(); c=imaplib.IMAP4_SSL('127.0.0.1',$IMAPS_PORT,ssl_context=ssl._create_unverified_context()); c.login('$USER_NAME','$PASSPHRASE'+otp); c.select(); print(c.fetch('1:*','(BODY.PEEK[HEADER.FIELDS (SUBJECT)])')); c.logout()"
  or by hand:
    openssl s_client -quiet -connect 127.0.0.1:$IMAPS_PORT
    a LOGIN $USER_NAME "$PASSPHRASE<OTP>"

  Starting sealmail-imapd in the foreground; Ctrl-C stops it.

EOF
exec "$IMAPD" -c "$CONF"
