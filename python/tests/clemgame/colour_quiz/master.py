"""colour_quiz: the player gets one question and answers once; any non-empty
answer ends the game. A fixture for lmhost's clemcore backend tests."""

from clemcore.clemgame import DialogueGameMaster, GameBenchmark, ParseError, Player


class Answerer(Player):

    def _custom_response(self, context):
        return "Blue."  # the programmatic player (`-m mock`)


class ColourQuiz(DialogueGameMaster):

    def _on_setup(self, **game_instance):
        self.add_player(Answerer(self.player_models[0]), initial_context=game_instance["question"])

    def _parse_response(self, player, response):
        if not response.strip():
            raise ParseError("empty answer", response)
        return response.strip()

    def _advance_game(self, player, parsed_response):
        self.log_to_self("answer", parsed_response)
        self.state.succeed()

    def _on_parse_error(self, error):
        self.state.abort()


class ColourQuizBenchmark(GameBenchmark):

    def create_game_master(self, experiment, player_models):
        return ColourQuiz(self.game_spec, experiment, player_models)
