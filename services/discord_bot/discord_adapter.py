"""discord.py + discord-ext-voice-recv glue: commands, per-user receive sink, playback.

Everything here needs the `discord` extra; the logic it drives (VAD, conversion, the
orchestrator turn) lives in Discord-free modules so it is testable without Discord.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from services.discord_bot.handler import PlaybackUnavailable, UtteranceHandler
from services.discord_bot.live import BufferedReply, LiveConfig, LiveReceiver
from services.discord_bot.metrics import BotMetrics
from services.discord_bot.receiver import SegmenterFactory, VoiceReceiver
from services.discord_bot.settings import Settings
from services.kit.app import Readiness

log = logging.getLogger("discord_bot.discord")


class ChannelOutput:
    """Plays replies through a voice client and posts text in the command's channel."""

    def __init__(self, voice_client: Any, text_channel: Any) -> None:
        self.voice_client = voice_client
        self.text_channel = text_channel
        self._lock = asyncio.Lock()  # one reply at a time: a voice client plays one source

    async def play(self, pcm48_stereo: bytes) -> None:
        """Play raw 48 kHz stereo PCM16 (PCMAudio: no ffmpeg needed) and wait until it ends."""
        import discord

        async with self._lock:
            if not self.voice_client.is_connected():
                raise PlaybackUnavailable("not connected to a voice channel")
            loop = asyncio.get_running_loop()
            finished: asyncio.Future[Exception | None] = loop.create_future()

            def settle(error: Exception | None) -> None:
                if not finished.done():
                    finished.set_result(error)

            def after(error: Exception | None) -> None:
                # Called on the player thread when the source ends or fails.
                loop.call_soon_threadsafe(settle, error)

            try:
                self.voice_client.play(discord.PCMAudio(io.BytesIO(pcm48_stereo)), after=after)
            except (discord.ClientException, discord.opus.OpusNotLoaded, TypeError) as exc:
                raise PlaybackUnavailable(f"{type(exc).__name__}: {exc}") from exc
            error = await finished
            if error is not None:
                raise PlaybackUnavailable(f"playback stopped: {type(error).__name__}")

    def start_reply(self, reply: BufferedReply) -> None:
        """Live mode: play `reply` while it fills; it ends when finished or interrupted."""
        import discord

        class Streamed(discord.AudioSource):
            def read(self) -> bytes:  # the player thread asks every 20 ms
                return reply.read_frame()

        if not self.voice_client.is_connected():
            raise PlaybackUnavailable("not connected to a voice channel")
        if self.voice_client.is_playing():
            # One source per voice client: another speaker's reply is still playing.
            raise PlaybackUnavailable("another reply is playing")
        try:
            self.voice_client.play(Streamed())
        except (discord.ClientException, discord.opus.OpusNotLoaded, TypeError) as exc:
            raise PlaybackUnavailable(f"{type(exc).__name__}: {exc}") from exc

    async def send_text(self, text: str) -> None:
        """Post a message; discord.py waits out HTTP 429s by itself."""
        await self.text_channel.send(text)


class Receiver(Protocol):
    """What the sink feeds: VoiceReceiver (utterances) or LiveReceiver (live sessions)."""

    def feed(self, user_id: int, user_name: str, pcm48_stereo: bytes) -> None:
        """Add one chunk of a user's audio (receive thread)."""
        ...

    def user_left(self, user_id: int) -> None:
        """The user left the channel."""
        ...

    async def close(self) -> None:
        """Stop everything for this guild."""
        ...


def _make_sink(receiver: Receiver) -> Any:
    import discord
    from discord.ext import voice_recv

    davey: Any
    try:
        import davey
    except ImportError:  # without davey the library cannot join E2EE calls anyway
        davey = None

    class UtteranceSink(voice_recv.AudioSink):  # type: ignore[misc]
        """Takes opus per user, removes DAVE end-to-end encryption, decodes to PCM."""

        def __init__(self) -> None:
            super().__init__()
            self._decoders: dict[int, Any] = {}

        def wants_opus(self) -> bool:
            # Opus, not PCM: the extension decodes before DAVE decryption, which garbles E2EE
            # audio, so decryption and decoding happen here in the right order.
            return True

        def write(self, user: Any, data: Any) -> None:
            payload = data.opus
            if user is None or not payload:
                return
            connection = getattr(self.voice_client, "_connection", None)
            dave = getattr(connection, "dave_session", None)
            if davey is not None and dave is not None and dave.ready:
                try:
                    payload = dave.decrypt(user.id, davey.MediaType.audio, payload)
                except Exception:
                    # Unencrypted pass-through frames occur while a call switches E2EE on or off.
                    log.debug("DAVE decrypt failed; trying the frame as plain opus")
            decoder = self._decoders.get(user.id)
            if decoder is None:
                decoder = self._decoders[user.id] = discord.opus.Decoder()  # type: ignore[no-untyped-call]
            try:
                pcm = decoder.decode(payload, fec=False)
            except discord.opus.OpusError:
                return
            receiver.feed(user.id, getattr(user, "display_name", str(user.id)), pcm)

        def cleanup(self) -> None:
            self._decoders.clear()

        @voice_recv.AudioSink.listener()  # type: ignore[untyped-decorator]
        def on_voice_member_disconnect(self, member: Any, ssrc: int | None) -> None:
            receiver.user_left(member.id)

    return UtteranceSink()


class DiscordBot:
    """The running bot: log in, serve the gateway, and leave every voice channel on close."""

    def __init__(self, bot: Any, close_sessions: Callable[[], Awaitable[None]]) -> None:
        self.bot = bot
        self._close_sessions = close_sessions

    async def login(self, token: str) -> None:
        """Authenticate; raises discord.LoginFailure for a bad token."""
        await self.bot.login(token)

    async def connect(self) -> None:
        """Serve the gateway until closed; discord.py reconnects with backoff by itself."""
        await self.bot.connect(reconnect=True)

    async def close(self) -> None:
        """Leave voice channels, then close the gateway and HTTP session."""
        await self._close_sessions()
        await self.bot.close()


@dataclass
class _GuildSession:
    voice_client: Any
    receiver: Receiver


def build_bot(
    settings: Settings,
    handler: UtteranceHandler,
    metrics: BotMetrics,
    readiness: Readiness,
    segmenter_factory: SegmenterFactory,
    live: LiveConfig | None = None,
) -> DiscordBot:
    """A commands.Bot with /join and /leave (and !join/!leave if text commands are on).

    With `live` each speaker talks over a live session instead of utterances.
    """
    import discord
    from discord.ext import commands, voice_recv

    intents = discord.Intents.default()
    intents.voice_states = True
    # Message content is a privileged intent: only ask for it when text commands are wanted.
    intents.message_content = settings.text_commands
    bot = commands.Bot(command_prefix=settings.command_prefix, intents=intents)
    sessions: dict[int, _GuildSession] = {}

    async def end_session(guild_id: int) -> None:
        session = sessions.pop(guild_id, None)
        if session is None:
            return
        metrics.voice_connections.set(len(sessions))
        if session.voice_client.is_listening():
            session.voice_client.stop_listening()
        await session.receiver.close()
        if session.voice_client.is_connected():
            await session.voice_client.disconnect(force=False)

    @bot.event
    async def setup_hook() -> None:
        if settings.guild_ids:
            for gid in settings.guild_ids:
                guild = discord.Object(id=gid)
                bot.tree.copy_global_to(guild=guild)
                await bot.tree.sync(guild=guild)
        else:
            await bot.tree.sync()

    @bot.event
    async def on_ready() -> None:
        readiness.ready = True
        readiness.reason = "ok"
        readiness.details["guilds"] = len(bot.guilds)
        log.info("connected to Discord", extra={"guilds": len(bot.guilds)})

    @bot.event
    async def on_resumed() -> None:
        readiness.ready, readiness.reason = True, "ok"

    @bot.event
    async def on_disconnect() -> None:
        # discord.py reconnects with backoff by itself; report it while it does.
        readiness.ready, readiness.reason = False, "Discord gateway disconnected; reconnecting"

    @bot.event
    async def on_voice_state_update(member: Any, before: Any, after: Any) -> None:
        guild_id = member.guild.id
        session = sessions.get(guild_id)
        if session is None:
            return
        if bot.user is not None and member.id == bot.user.id and after.channel is None:
            await end_session(guild_id)  # kicked or disconnected for good
        elif before.channel is not None and after.channel != before.channel:
            session.receiver.user_left(member.id)

    @bot.hybrid_command(name="join", description="Join your voice channel and listen.")
    async def join(ctx: commands.Context[Any]) -> None:
        # Joining can take longer than the 3 s Discord gives a slash command to answer.
        await ctx.defer()
        voice = getattr(ctx.author, "voice", None)
        if ctx.guild is None or voice is None or voice.channel is None:
            await ctx.send("Join a voice channel first, then use this command.")
            return
        await end_session(ctx.guild.id)
        try:
            vc = await voice.channel.connect(
                cls=voice_recv.VoiceRecvClient, reconnect=True, self_deaf=False, timeout=30.0
            )
        except (discord.ClientException, TimeoutError, discord.opus.OpusNotLoaded) as exc:
            await ctx.send(f"Could not join {voice.channel.mention}: {type(exc).__name__}")
            return
        output = ChannelOutput(vc, ctx.channel)
        loop = asyncio.get_running_loop()
        receiver: Receiver
        if live is not None:
            receiver = LiveReceiver(ctx.guild.id, live, handler.sessions, output, loop=loop)
        else:
            receiver = VoiceReceiver(
                ctx.guild.id,
                handler,
                output,
                segmenter_factory,
                loop=loop,
                max_pending=settings.max_pending_per_user,
                metrics=metrics,
            )
        vc.listen(_make_sink(receiver))
        sessions[ctx.guild.id] = _GuildSession(vc, receiver)
        metrics.voice_connections.set(len(sessions))
        hint = f" Start with “{settings.wake_phrase}”." if settings.wake_phrase else ""
        await ctx.send(f"Listening in {voice.channel.mention}.{hint}")

    @bot.hybrid_command(name="leave", description="Stop listening and leave the voice channel.")
    async def leave(ctx: commands.Context[Any]) -> None:
        if ctx.guild is None or ctx.guild.id not in sessions:
            await ctx.send("I am not in a voice channel here.")
            return
        await end_session(ctx.guild.id)
        await ctx.send("Left the voice channel.")

    async def close_all() -> None:
        for gid in list(sessions):
            await end_session(gid)

    return DiscordBot(bot, close_all)
